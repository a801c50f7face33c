#!/bin/bash
# Issue 16 at 7k on bonsai: the new GPU tests, ours (MCMC 1M cap, then default) and gsplat
# 1.5.3's MCMCStrategy with the same cap, in one call; each result lands in $OUT as it comes.
cd "$(dirname "$0")"
nvidia-smi -L > $OUT/machine.txt
./gpu_train --ignored --test-threads=1 mcmc_regularisers position_noise short_training > $OUT/gpu_train.log 2>&1; echo "gpu_train rc $?" >> $OUT/summary.txt
for s in mcmc default; do
  extra=""; [ $s = mcmc ] && extra="--set densify.strategy=mcmc --set densify.max_gaussians=1000000"
  ./spaceport train --scene bonsai --out /tmp/o_$s --iters 7000 --config unbounded-train.yaml $extra --device cuda > $OUT/ours_$s.log 2>&1
  echo "ours $s rc $?" >> $OUT/summary.txt
  for f in /tmp/o_$s/*.json; do [ -f "$f" ] && cp "$f" "$OUT/ours_${s}_$(basename $f)"; done
done
./spaceport compress /tmp/o_mcmc/point_cloud.ply --out /tmp/o_mcmc/scene.sog > $OUT/compress_mcmc.log 2>&1
ls -la /tmp/o_mcmc >> $OUT/summary.txt
pip install -q --no-index --no-deps --target /tmp/site gsplat-1.5.3-py3-none-any.whl
export PYTHONPATH=/tmp/site TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=16
python3 gsplat_train.py --scene bonsai --out /tmp/g_mcmc --iters 7000 --strategy mcmc --cap-max 1000000 > $OUT/gsplat_mcmc.log 2>&1
echo "gsplat mcmc rc $?" >> $OUT/summary.txt
cp /tmp/g_mcmc/metrics.json $OUT/gsplat_mcmc_metrics.json
cat $OUT/summary.txt
