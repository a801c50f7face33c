//! Bench targets live beside this crate as `[[bench]]` targets.
