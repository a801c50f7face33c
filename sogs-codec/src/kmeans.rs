//! k-means for the SH palette: a hierarchical (divisive) k-means whose every node runs Hamerly's
//! bounded Lloyd iterations, in parallel over subtrees. A flat k-means with 65 536 centroids costs
//! N·65 536·dims per iteration; splitting into 32-way levels down to leaves of ≤ 64 centroids costs
//! a few hundred distance evaluations per point in all, which is what makes a million Gaussians
//! with 45 SH values fit in seconds on two cores. [`refine`] then runs global Lloyd iterations
//! over the whole palette with a centroid neighbour graph standing in for the full search, so
//! points can leave the subtree a top-level split put them in.

use std::sync::atomic::{AtomicUsize, Ordering};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Children per split of the hierarchy.
const BRANCH: usize = 32;
/// Nodes asking for at most this many centroids run a flat k-means.
const LEAF_K: usize = 64;
/// A split is trained on at most this many points per child, then every point is assigned.
const SAMPLE_PER_CHILD: usize = 64;
/// Splits deeper than this become leaves: only data that refuses to split (duplicates) gets here.
const MAX_DEPTH: usize = 12;

/// Result of clustering `n` points of `dim` values.
#[derive(Clone, Debug)]
pub struct Palette {
    /// `k * dim` centroid values; similar centroids sit next to each other (tree order).
    pub centroids: Vec<f32>,
    /// Centroid index of every point.
    pub labels: Vec<u32>,
    /// Number of points per centroid.
    pub sizes: Vec<u32>,
}

impl Palette {
    /// Number of centroids.
    pub fn len(&self) -> usize {
        self.sizes.len()
    }

    /// Whether there are no centroids.
    pub fn is_empty(&self) -> bool {
        self.sizes.is_empty()
    }
}

/// Squared Euclidean distance, written in 8-wide blocks so it vectorises.
#[inline]
pub fn dist2(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            let d = x[l] - y[l];
            acc[l] += d * d;
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        let d = x - y;
        s += d * d;
    }
    s
}

/// Clusters `data` (`n` rows of `dim`) into at most `k` centroids with `iters` Lloyd iterations per
/// node; deterministic for a given seed whatever the thread count. `progress(done, total)` counts
/// points whose final cluster is known.
///
/// `weights` (one per point, positive) make centroids weighted means and steer both seeding and
/// the share of centroids each subtree gets towards heavy points; `None` weighs all points alike.
pub fn palette(
    data: &[f32],
    dim: usize,
    k: usize,
    iters: usize,
    seed: u64,
    weights: Option<&[f32]>,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Palette {
    let n = data.len().checked_div(dim).unwrap_or(0);
    let done = AtomicUsize::new(0);
    let ctx = Ctx {
        data,
        dim,
        iters,
        weights,
        done: &done,
        total: n,
        progress,
    };
    let members: Vec<u32> = (0..n as u32).collect();
    let clusters = ctx.solve(members, k.max(1).min(n.max(1)), seed, 0);
    let mut centroids = Vec::with_capacity(clusters.len() * dim);
    let mut labels = vec![0u32; n];
    let mut sizes = Vec::with_capacity(clusters.len());
    for (c, (cent, members)) in clusters.iter().enumerate() {
        centroids.extend_from_slice(cent);
        sizes.push(members.len() as u32);
        for &m in members {
            labels[m as usize] = c as u32;
        }
    }
    Palette {
        centroids,
        labels,
        sizes,
    }
}

struct Ctx<'a> {
    data: &'a [f32],
    dim: usize,
    iters: usize,
    done: &'a AtomicUsize,
    total: usize,
    progress: &'a (dyn Fn(usize, usize) + Sync),
    weights: Option<&'a [f32]>,
}

type Cluster = (Vec<f32>, Vec<u32>);

fn mix(seed: u64, i: u64) -> u64 {
    // splitmix64 step: independent child seeds from one parent seed.
    let mut z = seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Ctx<'_> {
    fn row(&self, i: u32) -> &[f32] {
        let i = i as usize;
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    fn weight(&self, i: u32) -> f64 {
        self.weights.map_or(1.0, |w| w[i as usize] as f64)
    }

    fn finish(&self, n: usize) {
        let d = self.done.fetch_add(n, Ordering::Relaxed) + n;
        (self.progress)(d, self.total);
    }

    fn solve(&self, members: Vec<u32>, k: usize, seed: u64, depth: usize) -> Vec<Cluster> {
        let n = members.len();
        if n == 0 {
            return vec![];
        }
        if k >= n {
            self.finish(n);
            return members
                .iter()
                .map(|&m| (self.row(m).to_vec(), vec![m]))
                .collect();
        }
        if k <= LEAF_K || depth >= MAX_DEPTH {
            let k = k.min(LEAF_K);
            let (cent, labels) = self.kmeans(&members, k, seed);
            self.finish(n);
            return group(&members, &labels, k)
                .into_iter()
                .zip(cent.chunks(self.dim))
                .filter(|(m, _)| !m.is_empty())
                .map(|(m, c)| (c.to_vec(), m))
                .collect();
        }
        let b = BRANCH.min(k);
        let train: Vec<u32> = if n > SAMPLE_PER_CHILD * b {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut idx = rand::seq::index::sample(&mut rng, n, SAMPLE_PER_CHILD * b).into_vec();
            idx.sort_unstable();
            idx.into_iter().map(|i| members[i]).collect()
        } else {
            members.clone()
        };
        let (cent, _) = self.kmeans(&train, b, seed);
        let labels: Vec<u32> = members
            .par_iter()
            .with_min_len(256)
            .map(|&m| nearest(self.row(m), &cent, self.dim).0)
            .collect();
        let children: Vec<Vec<u32>> = group(&members, &labels, b)
            .into_iter()
            .filter(|c| !c.is_empty())
            .collect();
        if children.len() < 2 {
            // The split found no structure (all points alike): one flat k-means is all they need.
            return self.solve(members, k, seed, MAX_DEPTH);
        }
        drop(members);
        let sizes: Vec<usize> = children.iter().map(Vec::len).collect();
        // Centroids in proportion to weight. Allocating by error instead (sqrt(W·SSE)) fit the
        // lego SH 6 % better in rms but gained only 0.015 dB and merges well-separated clusters
        // when k matches their number, so the count rule stays.
        let shares: Vec<f64> = children
            .iter()
            .map(|c| c.iter().map(|&m| self.weight(m)).sum())
            .collect();
        let ks = allocate(k, &sizes, &shares);
        children
            .into_par_iter()
            .zip(ks)
            .enumerate()
            .map(|(c, (m, kc))| self.solve(m, kc, mix(seed, c as u64 + 1), depth + 1))
            .collect::<Vec<_>>()
            .into_iter()
            .flatten()
            .collect()
    }

    /// Flat k-means over `members` with k-means++ seeding and Hamerly's bounds; returns the
    /// centroids (`k * dim`) and each member's label.
    fn kmeans(&self, members: &[u32], k: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
        let dim = self.dim;
        let n = members.len();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // k-means++ seeding.
        let mut cent = Vec::with_capacity(k * dim);
        let first = members[rng.random_range(0..n)];
        cent.extend_from_slice(self.row(first));
        let mut d2: Vec<f32> = members
            .iter()
            .map(|&m| dist2(self.row(m), &cent[..dim]))
            .collect();
        for _ in 1..k {
            let total: f64 = d2
                .iter()
                .zip(members)
                .map(|(&v, &m)| v as f64 * self.weight(m))
                .sum();
            let pick = if total > 0.0 {
                let mut t = rng.random::<f64>() * total;
                let mut pick = n - 1;
                for (i, &v) in d2.iter().enumerate() {
                    t -= v as f64 * self.weight(members[i]);
                    if t <= 0.0 {
                        pick = i;
                        break;
                    }
                }
                pick
            } else {
                rng.random_range(0..n)
            };
            let c0 = cent.len();
            cent.extend_from_slice(self.row(members[pick]));
            let newc = cent[c0..].to_vec();
            d2.par_iter_mut()
                .with_min_len(1024)
                .zip(members.par_iter().with_min_len(1024))
                .for_each(|(d, &m)| *d = d.min(dist2(self.row(m), &newc)));
        }

        // Initial assignment with nearest and second-nearest distances.
        let mut state: Vec<(u32, f32, f32)> = members
            .par_iter()
            .with_min_len(256)
            .map(|&m| {
                let (a, u, l) = nearest2(self.row(m), &cent, dim);
                (a, u, l)
            })
            .collect();
        let mut sums = vec![0f64; k * dim];
        let mut counts = vec![0u32; k];
        let mut wsum = vec![0f64; k];
        for _ in 0..self.iters {
            // Centroid update, summed sequentially so the result does not depend on threads.
            sums.iter_mut().for_each(|s| *s = 0.0);
            counts.iter_mut().for_each(|c| *c = 0);
            wsum.iter_mut().for_each(|c| *c = 0.0);
            for (i, &m) in members.iter().enumerate() {
                let a = state[i].0 as usize;
                counts[a] += 1;
                let w = self.weight(m);
                wsum[a] += w;
                for (s, &v) in sums[a * dim..(a + 1) * dim].iter_mut().zip(self.row(m)) {
                    *s += w * v as f64;
                }
            }
            let mut moved = vec![0f32; k];
            let mut reseeded = false;
            for j in 0..k {
                let old = cent[j * dim..(j + 1) * dim].to_vec();
                if counts[j] == 0 {
                    // Empty cluster: move it onto the point worst served by its centroid.
                    let (far, _) =
                        state
                            .iter()
                            .enumerate()
                            .fold((0usize, -1.0f32), |best, (i, s)| {
                                if s.1 > best.1 {
                                    (i, s.1)
                                } else {
                                    best
                                }
                            });
                    cent[j * dim..(j + 1) * dim].copy_from_slice(self.row(members[far]));
                    reseeded = true;
                } else {
                    let inv = 1.0 / wsum[j];
                    for d in 0..dim {
                        cent[j * dim + d] = (sums[j * dim + d] * inv) as f32;
                    }
                }
                moved[j] = dist2(&old, &cent[j * dim..(j + 1) * dim]).sqrt();
            }
            let max_move = moved.iter().cloned().fold(0.0f32, f32::max);
            if max_move == 0.0 && !reseeded {
                break;
            }
            // Half the distance from each centroid to its nearest other centroid.
            let half_sep: Vec<f32> = (0..k)
                .map(|j| {
                    let cj = &cent[j * dim..(j + 1) * dim];
                    (0..k)
                        .filter(|&o| o != j)
                        .map(|o| dist2(cj, &cent[o * dim..(o + 1) * dim]))
                        .fold(f32::INFINITY, f32::min)
                        .sqrt()
                        * 0.5
                })
                .collect();
            let (max1, arg1) = moved
                .iter()
                .enumerate()
                .fold(
                    (0.0f32, usize::MAX),
                    |b, (j, &v)| if v > b.0 { (v, j) } else { b },
                );
            let max2 = moved
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != arg1)
                .map(|(_, &v)| v)
                .fold(0.0f32, f32::max);
            let cent_ref = &cent;
            state
                .par_iter_mut()
                .with_min_len(256)
                .zip(members.par_iter().with_min_len(256))
                .for_each(|(s, &m)| {
                    let a = s.0 as usize;
                    s.1 += moved[a];
                    s.2 -= if a == arg1 { max2 } else { max1 };
                    if reseeded {
                        s.2 = 0.0;
                    }
                    let bound = half_sep[a].max(s.2);
                    if s.1 <= bound {
                        return;
                    }
                    let x = self.row(m);
                    s.1 = dist2(x, &cent_ref[a * dim..(a + 1) * dim]).sqrt();
                    if s.1 <= bound {
                        return;
                    }
                    *s = nearest2(x, cent_ref, dim);
                });
        }
        let labels = state.into_iter().map(|s| s.0).collect();
        (cent, labels)
    }
}

/// Neighbours per centroid in the graph that [`refine`] searches.
const GRAPH_K: usize = 24;
/// The neighbour graph starts from brute force within blocks of this many consecutive centroids
/// (tree order puts similar centroids together), then neighbour-of-neighbour rounds join blocks.
const GRAPH_BLOCK: usize = 1024;

/// The `GRAPH_K` nearest centroids found so far for one centroid, nearest first.
#[derive(Clone)]
struct TopK {
    d: [f32; GRAPH_K],
    i: [u32; GRAPH_K],
    len: usize,
}

impl TopK {
    fn new() -> Self {
        Self {
            d: [f32::INFINITY; GRAPH_K],
            i: [u32::MAX; GRAPH_K],
            len: 0,
        }
    }

    fn push(&mut self, d: f32, i: u32) {
        if self.len == GRAPH_K && d >= self.d[GRAPH_K - 1] {
            return;
        }
        if self.i[..self.len].contains(&i) {
            return;
        }
        let mut p = self.len.min(GRAPH_K - 1);
        while p > 0 && self.d[p - 1] > d {
            self.d[p] = self.d[p - 1];
            self.i[p] = self.i[p - 1];
            p -= 1;
        }
        self.d[p] = d;
        self.i[p] = i;
        self.len = (self.len + 1).min(GRAPH_K);
    }

    fn ids(&self) -> &[u32] {
        &self.i[..self.len]
    }
}

/// Approximate `GRAPH_K`-nearest-neighbour graph of the centroids: exact within blocks of the
/// tree order, then `rounds` of neighbour-of-neighbour search (NN-descent) from `start`.
fn centroid_graph(cent: &[f32], dim: usize, start: Option<&[TopK]>, rounds: usize) -> Vec<TopK> {
    let k = cent.len() / dim;
    let c = |j: usize| &cent[j * dim..(j + 1) * dim];
    let mut g: Vec<TopK> = match start {
        Some(s) => s
            .par_iter()
            .enumerate()
            .map(|(j, old)| {
                // Centroids moved: re-measure the old neighbours.
                let mut t = TopK::new();
                for &o in old.ids() {
                    t.push(dist2(c(j), c(o as usize)), o);
                }
                t
            })
            .collect(),
        None => (0..k)
            .into_par_iter()
            .with_min_len(16)
            .map(|j| {
                let b0 = j / GRAPH_BLOCK * GRAPH_BLOCK;
                let mut t = TopK::new();
                for o in b0..(b0 + GRAPH_BLOCK).min(k) {
                    if o != j {
                        t.push(dist2(c(j), c(o)), o as u32);
                    }
                }
                t
            })
            .collect(),
    };
    for _ in 0..rounds {
        g = (0..k)
            .into_par_iter()
            .with_min_len(16)
            .map(|j| {
                let mut t = g[j].clone();
                for &o in g[j].ids() {
                    for &p in g[o as usize].ids() {
                        if p as usize != j {
                            t.push(dist2(c(j), c(p as usize)), p);
                        }
                    }
                }
                t
            })
            .collect();
    }
    g
}

/// Total (weighted) squared distance of every point to its centroid.
#[cfg(test)]
pub fn total_sq_error(data: &[f32], dim: usize, pal: &Palette, weights: Option<&[f32]>) -> f64 {
    pal.labels
        .par_iter()
        .enumerate()
        .map(|(i, &l)| {
            let l = l as usize;
            let e = dist2(
                &data[i * dim..(i + 1) * dim],
                &pal.centroids[l * dim..(l + 1) * dim],
            ) as f64;
            e * weights.map_or(1.0, |w| w[i] as f64)
        })
        .sum()
}

/// Global Lloyd iterations over a whole palette, fixing what the hierarchy cannot: points that a
/// top-level split sent to the wrong subtree and centroid shares that differ from what the data
/// needs. Each point walks the centroid neighbour graph from its current centroid to a local
/// nearest (cost ~`GRAPH_K`·dim per point, not k·dim), then centroids move to their members'
/// (weighted) means and empty centroids take the worst-served points. A point only changes
/// centroid for a strictly closer one and means minimise the error of fixed members, so the total
/// squared error never increases. Centroid order, and so label locality, is kept.
pub fn refine(data: &[f32], dim: usize, pal: &mut Palette, iters: usize, weights: Option<&[f32]>) {
    let k = pal.len();
    let n = pal.labels.len();
    if k < 2 || iters == 0 || n == 0 {
        return;
    }
    let row = |i: usize| &data[i * dim..(i + 1) * dim];
    let weight = |i: usize| weights.map_or(1.0, |w| w[i] as f64);
    let mut graph = centroid_graph(&pal.centroids, dim, None, 2);
    let mut dist: Vec<f32> = vec![0.0; n];
    for it in 0..iters {
        let cent = &pal.centroids;
        let g = &graph;
        pal.labels
            .par_iter_mut()
            .zip(dist.par_iter_mut())
            .enumerate()
            .with_min_len(256)
            .for_each(|(i, (l, d))| {
                let x = row(i);
                let mut a = *l as usize;
                let mut best = dist2(x, &cent[a * dim..(a + 1) * dim]);
                // Greedy descent; a few steps at most since labels start near their optimum.
                for _ in 0..8 {
                    let mut next = a;
                    for &o in g[a].ids() {
                        let o = o as usize;
                        let e = dist2(x, &cent[o * dim..(o + 1) * dim]);
                        if e < best {
                            best = e;
                            next = o;
                        }
                    }
                    if next == a {
                        break;
                    }
                    a = next;
                }
                *l = a as u32;
                *d = best;
            });

        let mut counts = vec![0u32; k];
        for &l in &pal.labels {
            counts[l as usize] += 1;
        }
        let empty: Vec<usize> = (0..k).filter(|&j| counts[j] == 0).collect();
        if !empty.is_empty() {
            // Worst-served points (ties by index, for determinism) from clusters that keep a member.
            let mut worst: Vec<usize> = (0..n).filter(|&i| dist[i] > 0.0).collect();
            worst.sort_unstable_by(|&a, &b| {
                (dist[b] as f64 * weight(b))
                    .total_cmp(&(dist[a] as f64 * weight(a)))
                    .then(a.cmp(&b))
            });
            let mut w = worst.into_iter();
            for &e in &empty {
                let Some(p) = w.by_ref().find(|&p| counts[pal.labels[p] as usize] >= 2) else {
                    break;
                };
                let from = pal.labels[p] as usize;
                counts[from] -= 1;
                counts[e] = 1;
                pal.labels[p] = e as u32;
                dist[p] = 0.0;
                pal.centroids[e * dim..(e + 1) * dim].copy_from_slice(row(p));
                // The new centroid sits where `from`'s members are: give it their neighbours.
                let mut t = TopK::new();
                let ce = &pal.centroids[e * dim..(e + 1) * dim];
                t.push(
                    dist2(ce, &pal.centroids[from * dim..(from + 1) * dim]),
                    from as u32,
                );
                for &o in graph[from].ids() {
                    if o as usize != e {
                        t.push(dist2(ce, &pal.centroids[o as usize * dim..][..dim]), o);
                    }
                }
                graph[e] = t;
                let df = dist2(ce, &pal.centroids[from * dim..(from + 1) * dim]);
                graph[from].push(df, e as u32);
            }
        }

        // Means, summed in point order so the result does not depend on threads.
        let mut sums = vec![0f64; k * dim];
        let mut wsum = vec![0f64; k];
        for (i, &l) in pal.labels.iter().enumerate() {
            let l = l as usize;
            let w = weight(i);
            wsum[l] += w;
            for (s, &v) in sums[l * dim..(l + 1) * dim].iter_mut().zip(row(i)) {
                *s += w * v as f64;
            }
        }
        for j in 0..k {
            if wsum[j] > 0.0 {
                let inv = 1.0 / wsum[j];
                for d in 0..dim {
                    pal.centroids[j * dim + d] = (sums[j * dim + d] * inv) as f32;
                }
            }
        }
        if it + 1 < iters {
            graph = centroid_graph(&pal.centroids, dim, Some(&graph), 1);
        }
    }
    let mut sizes = vec![0u32; k];
    for &l in &pal.labels {
        sizes[l as usize] += 1;
    }
    pal.sizes = sizes;
}

/// Nearest centroid of `x` and the squared distance to it.
fn nearest(x: &[f32], cent: &[f32], dim: usize) -> (u32, f32) {
    let mut best = (0u32, f32::INFINITY);
    for (j, c) in cent.chunks_exact(dim).enumerate() {
        let d = dist2(x, c);
        if d < best.1 {
            best = (j as u32, d);
        }
    }
    best
}

/// Nearest centroid, its distance and the distance to the second nearest (not squared).
fn nearest2(x: &[f32], cent: &[f32], dim: usize) -> (u32, f32, f32) {
    let (mut a, mut d1, mut d2) = (0u32, f32::INFINITY, f32::INFINITY);
    for (j, c) in cent.chunks_exact(dim).enumerate() {
        let d = dist2(x, c);
        if d < d1 {
            d2 = d1;
            d1 = d;
            a = j as u32;
        } else if d < d2 {
            d2 = d;
        }
    }
    (a, d1.sqrt(), d2.sqrt())
}

fn group(members: &[u32], labels: &[u32], k: usize) -> Vec<Vec<u32>> {
    let mut out = vec![Vec::new(); k];
    for (&m, &l) in members.iter().zip(labels) {
        out[l as usize].push(m);
    }
    out
}

/// Splits `k` centroids among children in proportion to their `shares` (total weights), at least
/// one and at most `size` each (largest remainders first).
fn allocate(k: usize, sizes: &[usize], shares: &[f64]) -> Vec<usize> {
    let n: usize = sizes.iter().sum();
    let k = k.min(n).max(sizes.len());
    let total: f64 = shares.iter().sum();
    let exact: Vec<f64> = if total > 0.0 {
        shares.iter().map(|&s| k as f64 * s / total).collect()
    } else {
        sizes
            .iter()
            .map(|&s| k as f64 * s as f64 / n as f64)
            .collect()
    };
    let mut ks: Vec<usize> = exact
        .iter()
        .zip(sizes)
        .map(|(&e, &s)| (e.floor() as usize).clamp(1, s))
        .collect();
    let mut assigned: usize = ks.iter().sum();
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by(|&a, &b| {
        (exact[b] - exact[b].floor())
            .total_cmp(&(exact[a] - exact[a].floor()))
            .then(a.cmp(&b))
    });
    while assigned < k {
        let mut progressed = false;
        for &c in &order {
            if assigned < k && ks[c] < sizes[c] {
                ks[c] += 1;
                assigned += 1;
                progressed = true;
            }
        }
        if !progressed {
            break;
        }
    }
    while assigned > k {
        let Some(c) = (0..ks.len()).filter(|&c| ks[c] > 1).max_by_key(|&c| ks[c]) else {
            break;
        };
        ks[c] -= 1;
        assigned -= 1;
    }
    ks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blobs(n_blobs: usize, per: usize, dim: usize, seed: u64) -> (Vec<f32>, Vec<usize>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let centres: Vec<Vec<f32>> = (0..n_blobs)
            .map(|_| (0..dim).map(|_| rng.random::<f32>() * 100.0).collect())
            .collect();
        let mut data = Vec::new();
        let mut truth = Vec::new();
        for _ in 0..per {
            for (b, c) in centres.iter().enumerate() {
                data.extend(c.iter().map(|v| v + rng.random::<f32>() * 0.1));
                truth.push(b);
            }
        }
        (data, truth)
    }

    #[test]
    fn separated_blobs_are_recovered_exactly() {
        let (data, truth) = blobs(40, 30, 9, 1);
        let p = palette(&data, 9, 40, 10, 7, None, &|_, _| {});
        assert_eq!(p.len(), 40);
        // Every blob maps to exactly one label and vice versa.
        let mut map = std::collections::HashMap::new();
        for (i, &t) in truth.iter().enumerate() {
            let l = *map.entry(t).or_insert(p.labels[i]);
            assert_eq!(l, p.labels[i], "blob {t} split");
        }
        let distinct: std::collections::HashSet<_> = map.values().collect();
        assert_eq!(distinct.len(), 40);
        assert_eq!(p.sizes.iter().sum::<u32>() as usize, truth.len());
    }

    #[test]
    fn hierarchy_matches_flat_quality_and_is_deterministic() {
        // 3000 blobs forces two levels of splitting (k > 64, k > 32 * 64 is not needed).
        let (data, _) = blobs(3000, 4, 15, 2);
        let p1 = palette(&data, 15, 3000, 8, 3, None, &|_, _| {});
        let p2 = palette(&data, 15, 3000, 8, 3, None, &|_, _| {});
        assert_eq!(p1.labels, p2.labels);
        assert_eq!(p1.centroids, p2.centroids);

        // Noise spans 0.1 per dimension (at most 0.39 in 15-D) while blob centres lie tens apart:
        // a point closer than 1.0 to its centroid sits in a cluster of its own blob. Proportional
        // allocation of centroids down the hierarchy may merge a few blobs, not many.
        let n = data.len() / 15;
        let well = (0..n)
            .filter(|&i| {
                dist2(
                    &data[i * 15..(i + 1) * 15],
                    &p1.centroids[p1.labels[i] as usize * 15..][..15],
                ) < 1.0
            })
            .count();
        assert!(
            well as f64 > 0.97 * n as f64,
            "{well} of {n} points well clustered"
        );
    }

    #[test]
    fn fewer_points_than_centroids_keeps_every_point() {
        let data: Vec<f32> = (0..30).map(|i| i as f32).collect();
        let p = palette(&data, 3, 64, 5, 0, None, &|_, _| {});
        assert_eq!(p.len(), 10);
        for i in 0..10 {
            assert_eq!(
                &p.centroids[p.labels[i] as usize * 3..][..3],
                &data[i * 3..][..3]
            );
        }
    }

    #[test]
    fn identical_points_do_not_recurse_forever() {
        let data = vec![0.25f32; 5000 * 9];
        let p = palette(&data, 9, 4096, 5, 1, None, &|_, _| {});
        assert!(!p.is_empty() && p.len() <= LEAF_K);
        assert!(p.centroids.iter().all(|&v| v == 0.25));
        assert_eq!(p.sizes.iter().sum::<u32>(), 5000);
    }

    #[test]
    fn weights_pull_centroids_towards_heavy_points() {
        // Two points, one centroid: the weighted mean sits at 9/10 of the way to the heavy point.
        let data = [0.0f32, 0.0, 10.0, 0.0];
        let p = palette(&data, 2, 1, 3, 0, Some(&[1.0, 9.0]), &|_, _| {});
        assert!((p.centroids[0] - 9.0).abs() < 1e-5, "{:?}", p.centroids);
        let p = palette(&data, 2, 1, 3, 0, None, &|_, _| {});
        assert!((p.centroids[0] - 5.0).abs() < 1e-5);
    }

    fn random_set(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // Uniform noise plus a few dense spots, so the hierarchy has both easy and hard splits.
        (0..n)
            .flat_map(|i| {
                let spot = (i % 7) as f32;
                (0..dim)
                    .map(|d| {
                        let u: f32 = rng.random();
                        if i % 3 == 0 {
                            u * 4.0
                        } else {
                            spot * 0.5 + (d as f32 * 0.1) + u * 0.05
                        }
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn refinement_never_increases_the_error_and_keeps_labels_valid() {
        let dim = 12;
        for (seed, weighted) in [(1u64, false), (2, true), (3, false)] {
            let data = random_set(6000, dim, seed);
            let n = data.len() / dim;
            let w: Vec<f32> = (0..n).map(|i| 0.1 + (i % 13) as f32).collect();
            let w = weighted.then_some(&w[..]);
            let mut p = palette(&data, dim, 700, 4, seed, w, &|_, _| {});
            let mut before = total_sq_error(&data, dim, &p, w);
            for _ in 0..3 {
                refine(&data, dim, &mut p, 1, w);
                let after = total_sq_error(&data, dim, &p, w);
                assert!(after <= before, "seed {seed}: {after} > {before}");
                before = after;
            }
            assert_eq!(p.labels.len(), n);
            assert!(p.labels.iter().all(|&l| (l as usize) < p.len()));
            assert_eq!(p.sizes.iter().sum::<u32>() as usize, n);
            for (j, &sz) in p.sizes.iter().enumerate() {
                assert_eq!(
                    sz as usize,
                    p.labels.iter().filter(|&&l| l as usize == j).count()
                );
            }
        }
    }

    #[test]
    fn refinement_improves_a_hierarchical_palette() {
        // Uniform data: a 32-way top split cuts through dense regions, so many points start in
        // the wrong subtree and a global pass has something to fix.
        let dim = 8;
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let data: Vec<f32> = (0..8000 * dim).map(|_| rng.random::<f32>()).collect();
        let mut p = palette(&data, dim, 2500, 5, 4, None, &|_, _| {});
        let before = total_sq_error(&data, dim, &p, None);
        refine(&data, dim, &mut p, 5, None);
        let after = total_sq_error(&data, dim, &p, None);
        assert!(after < 0.99 * before, "{after} vs {before}");
        // Each point ends at its exact nearest centroid far more often than not.
        let exact = (0..8000)
            .filter(|&i| nearest(&data[i * dim..(i + 1) * dim], &p.centroids, dim).0 == p.labels[i])
            .count();
        assert!(exact > 7600, "{exact} of 8000 at their nearest centroid");
    }

    #[test]
    fn refinement_is_deterministic_and_fills_empty_centroids() {
        let dim = 6;
        let data = random_set(3000, dim, 5);
        let mut a = palette(&data, dim, 400, 3, 1, None, &|_, _| {});
        // Move one centroid far away so nothing picks it: refinement must re-use it.
        a.centroids[..dim].iter_mut().for_each(|v| *v = 1e6);
        let mut b = a.clone();
        refine(&data, dim, &mut a, 3, None);
        refine(&data, dim, &mut b, 3, None);
        assert_eq!(a.labels, b.labels);
        assert_eq!(a.centroids, b.centroids);
        assert!(a.sizes[0] > 0, "centroid 0 left empty");
    }

    #[test]
    fn allocation_is_proportional_and_bounded() {
        assert_eq!(
            allocate(10, &[50, 30, 20], &[50.0, 30.0, 20.0]),
            vec![5, 3, 2]
        );
        assert_eq!(allocate(10, &[50, 30, 20], &[1.0, 1.0, 8.0]), vec![1, 1, 8]);
        let ks = allocate(100, &[1, 1000, 3], &[1.0, 1000.0, 3.0]);
        assert_eq!(ks.iter().sum::<usize>(), 100);
        assert!(ks[0] == 1 && ks[2] >= 1 && ks[2] <= 3);
    }
}
