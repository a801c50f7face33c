#!/bin/bash
# One device call for what was written without a GPU (2026-12-04): every ignored GPU test
# (including the SfM matcher's parity tests), then issue 16's MCMC at 7k on bonsai with
# gsplat's MCMC init on both sides, then issue 18's bonsai run with SfM matching on the GPU.
# Carry a folder holding: spaceport, the test binaries gpu, gpu_train, gpu_match (from
# `cargo test --release -p splat-cuda --no-run`), bonsai/ (images + sparse/0 of
# ../shared/data/mipnerf360_bonsai_800), data/ (a SPACEPORT_DATA tree with strecha/ and
# mipnerf360_bonsai_800/images for gpu_match), unbounded-train.yaml, gsplat_train.py and the
# gsplat 1.5.3 wheel; run it as `bash FOLDER/next_gpu_checks.sh`. Results land in $OUT.
cd "$(dirname "$0")"
nvidia-smi -L > $OUT/machine.txt
export SPACEPORT_DATA=$PWD/data
for t in gpu gpu_train gpu_match; do
  ./$t --ignored --test-threads=1 > $OUT/test_$t.log 2>&1; echo "$t rc $?" >> $OUT/summary.txt
done
./spaceport train --scene bonsai --out /tmp/o_mcmc --iters 7000 --config unbounded-train.yaml \
  --strategy mcmc --max-gaussians 1000000 --device cuda > $OUT/ours_mcmc.log 2>&1
echo "ours mcmc rc $?" >> $OUT/summary.txt
cp /tmp/o_mcmc/metrics.json $OUT/ours_mcmc_metrics.json 2>/dev/null
pip install -q --no-index --no-deps --target /tmp/site gsplat-1.5.3-py3-none-any.whl
export PYTHONPATH=/tmp/site TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=16
python3 gsplat_train.py --scene bonsai --out /tmp/g_mcmc --iters 7000 --strategy mcmc \
  --cap-max 1000000 --init-opa 0.5 --init-scale 0.1 > $OUT/gsplat_mcmc.log 2>&1
echo "gsplat mcmc rc $?" >> $OUT/summary.txt
cp /tmp/g_mcmc/metrics.json $OUT/gsplat_mcmc_metrics.json 2>/dev/null
/usr/bin/time -v ./spaceport run bonsai/images --out /tmp/run_cuda --device cuda --preset fast \
  > $OUT/run_cuda.log 2>&1
echo "run cuda rc $?" >> $OUT/summary.txt
cp /tmp/run_cuda/job.json /tmp/run_cuda/report.md $OUT/ 2>/dev/null
cat $OUT/summary.txt
