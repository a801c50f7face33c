//! The seam between the trainer and a compute backend (CPU reference or GPU).
