#!/usr/bin/env python3
"""Where the pose error against a reference model comes from: per unordered image pair,
relative-rotation and translation-direction errors (the two terms of compare_models.py), by
baseline band, and per image after a similarity alignment (rotation and centre error).

usage: ~/peers-venv/bin/python pose_error_breakdown.py REF_MODEL EST_MODEL  (needs pycolmap)
"""
import itertools, sys
import numpy as np, pycolmap
ref = pycolmap.Reconstruction(sys.argv[1]); est = pycolmap.Reconstruction(sys.argv[2])
rp = {im.name: im.cam_from_world() for im in ref.images.values() if im.has_pose}
ep = {im.name: im.cam_from_world() for im in est.images.values() if im.has_pose}
names = sorted(rp)
def C(p): return p.inverse().translation
def ang(a,b):
    c=np.dot(a,b)/max(1e-12,np.linalg.norm(a)*np.linalg.norm(b)); return np.degrees(np.arccos(np.clip(c,-1,1)))
rows=[]
for a,b in itertools.combinations(names,2):
    if a not in ep or b not in ep: rows.append((a,b,180,180,0)); continue
    r = rp[b]*rp[a].inverse(); e = ep[b]*ep[a].inverse()
    dR = np.degrees((r.rotation.inverse()*e.rotation).angle()); dt = ang(r.translation, e.translation)
    rows.append((a,b,dR,dt,np.linalg.norm(C(rp[a])-C(rp[b]))))
R=np.array([r[2] for r in rows]); T=np.array([r[3] for r in rows]); B=np.array([r[4] for r in rows])
E=np.maximum(R,T)
def auc1(e): return 100*np.mean(np.clip(1-e/1.0,0,None))
print(f"pairs {len(rows)} AUC@1(approx, unordered) {auc1(E):.2f}  rot-only {auc1(R):.2f} trans-only {auc1(T):.2f}")
print(f"median rot {np.median(R):.4f} trans {np.median(T):.4f}; frac rot dominates {np.mean(R>T):.3f}")
rad = np.max(np.linalg.norm(np.array([C(rp[n]) for n in names]) - np.mean([C(rp[n]) for n in names],0),axis=1))
qs = np.quantile(B,[0,.1,.25,.5,.75,.9,1])
print("baseline / radius quantiles", np.round(qs/rad,3))
for lo,hi in zip(qs[:-1],qs[1:]):
    m=(B>=lo)&(B<=hi)
    print(f" baseline {lo/rad:.3f}-{hi/rad:.3f}: n={m.sum()} medR {np.median(R[m]):.4f} medT {np.median(T[m]):.4f} loss {np.sum(np.clip(E[m],0,1))/len(E)*100:.2f}")
# per image: sim3 align, centre error & rotation error
common=[n for n in names if n in ep]
src=np.array([C(ep[n]) for n in common]); dst=np.array([C(rp[n]) for n in common])
sim=pycolmap.estimate_sim3d(src,dst)
ce=np.array([np.linalg.norm(sim*s-d) for s,d in zip(src,dst)])/rad
Rs=sim.rotation
re=[]
for n in common:
    # est world->cam R_e ; aligned: R_e * Rs^-1
    Re = ep[n].rotation * Rs.inverse()
    re.append(np.degrees((rp[n].rotation.inverse()*Re).angle()))
re=np.array(re)
print(f"per-image centre err / radius: median {np.median(ce):.2e} p90 {np.quantile(ce,.9):.2e} max {ce.max():.2e}")
print(f"per-image rotation err (deg): median {np.median(re):.4f} p90 {np.quantile(re,.9):.4f} max {re.max():.4f}")
worst=np.argsort(-ce)[:8]; print("worst centres:", [(common[i], round(ce[i]*1e3,2)) for i in worst])
worst=np.argsort(-re)[:8]; print("worst rotations:", [(common[i], round(re[i],3)) for i in worst])
# per-image contribution to AUC loss
loss={n:0.0 for n in names}
for (a,b,_,_,_),e in zip(rows,E):
    l=min(e,1); loss[a]+=l; loss[b]+=l
w=sorted(loss.items(), key=lambda x:-x[1])[:8]; print("images with most loss:", [(k, round(v/len(names),3)) for k,v in w])
# camera
for c in est.cameras.values(): print("est cam", c.model, c.params)
