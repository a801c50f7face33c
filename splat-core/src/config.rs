//! One configuration system for every command and harness: a serde struct is the schema, and
//! each source of settings (a YAML file, a sweep's grid point, a `--set key=value` flag, a named
//! command-line flag) is a YAML tree laid over a base value of that struct. Keys a source
//! leaves out keep the base's values; a key the base does not have is an error that names it
//! with its dotted path, so a misspelt knob is never silently ignored.
//!
//! ```
//! use splat_core::config::{overlay_assignments, parse_assignment};
//! use splat_core::train::TrainConfig;
//!
//! let sets = [parse_assignment("densify.grad_threshold=0.0004")?];
//! let cfg = overlay_assignments(&TrainConfig::default(), &sets, "--set")?;
//! assert_eq!(cfg.densify.grad_threshold, 0.0004);
//! assert!(parse_assignment("densify.grad_treshold=1")
//!     .and_then(|kv| overlay_assignments(&TrainConfig::default(), &[kv], "--set"))
//!     .is_err());
//! # Ok::<(), splat_core::config::ConfigError>(())
//! ```

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_yaml::Value;

/// Errors reading or overlaying a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The YAML is malformed, or a value has the wrong type.
    #[error("invalid config {origin}: {message}")]
    Parse {
        /// Where the settings came from: a file, `--set`, a sweep point.
        origin: String,
        /// The parser's message, with the location.
        message: String,
    },
    /// A key the schema does not have.
    #[error("{origin}: unknown key {key}")]
    UnknownKey {
        /// Where the settings came from.
        origin: String,
        /// The key, dotted from the root (`train.densify.grad_treshold`).
        key: String,
    },
    /// A value is out of range.
    #[error("invalid config value: {0}")]
    Value(String),
}

/// `base` with the YAML tree `user` laid over it; `origin` names the source in errors.
pub fn overlay<T: Serialize + DeserializeOwned>(
    base: &T,
    user: &Value,
    origin: &str,
) -> Result<T, ConfigError> {
    let parse = |e: serde_yaml::Error| ConfigError::Parse {
        origin: origin.to_string(),
        message: e.to_string(),
    };
    let mut merged = serde_yaml::to_value(base).map_err(parse)?;
    if !user.is_null() {
        merge(&mut merged, user, "").map_err(|key| ConfigError::UnknownKey {
            origin: origin.to_string(),
            key,
        })?;
    }
    serde_yaml::from_value(merged).map_err(parse)
}

/// `base` with the YAML text laid over it (empty text changes nothing).
pub fn overlay_str<T: Serialize + DeserializeOwned>(
    base: &T,
    text: &str,
    origin: &str,
) -> Result<T, ConfigError> {
    let user: Value = serde_yaml::from_str(text).map_err(|e| ConfigError::Parse {
        origin: origin.to_string(),
        message: e.to_string(),
    })?;
    overlay(base, &user, origin)
}

/// `base` with the YAML file at `path` laid over it.
pub fn from_yaml_file_over<T: Serialize + DeserializeOwned>(
    base: &T,
    path: &Path,
) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    overlay_str(base, &text, &path.display().to_string())
}

/// `base` with each `(dotted key, value)` set in turn (later ones win).
pub fn overlay_assignments<T: Serialize + DeserializeOwned>(
    base: &T,
    sets: &[(String, Value)],
    origin: &str,
) -> Result<T, ConfigError> {
    overlay(base, &dotted_tree(sets), origin)
}

/// The YAML tree that sets each dotted key, e.g. `[("a.b", 1)]` -> `{a: {b: 1}}`.
pub fn dotted_tree(sets: &[(String, Value)]) -> Value {
    let mut tree = Value::Null;
    for (k, v) in sets {
        set_dotted(&mut tree, k, v.clone());
    }
    tree
}

/// Sets `value` at a dotted `key` inside a YAML mapping, creating mappings on the way.
pub fn set_dotted(root: &mut Value, key: &str, value: Value) {
    let mut cur = root;
    for part in key.split('.') {
        if !cur.is_mapping() {
            *cur = Value::Mapping(Default::default());
        }
        let Some(map) = cur.as_mapping_mut() else {
            return;
        };
        cur = map
            .entry(Value::String(part.to_string()))
            .or_insert(Value::Null);
    }
    *cur = value;
}

/// The assignment `key = v` that a named command-line flag stands for, or `None` when the flag
/// is not given, so that flags go through the same overlay as `--set KEY=VALUE`.
pub fn flag_assignment<T: Serialize>(key: &str, v: Option<T>) -> Option<(String, Value)> {
    let v = serde_yaml::to_value(v?).ok()?;
    Some((key.to_string(), v))
}

/// Parses a `KEY=VALUE` assignment; the value is YAML (`0.0004`, `true`, `[1, 1, 1]`, `null`,
/// a bare word is a string).
pub fn parse_assignment(s: &str) -> Result<(String, Value), ConfigError> {
    let bad = |message: &str| ConfigError::Parse {
        origin: format!("--set {s}"),
        message: message.to_string(),
    };
    let (key, value) = s.split_once('=').ok_or_else(|| bad("expected KEY=VALUE"))?;
    let key = key.trim();
    if key.is_empty() || key.split('.').any(str::is_empty) {
        return Err(bad("the key is empty or has an empty part"));
    }
    let value: Value = serde_yaml::from_str(value).map_err(|e| bad(&e.to_string()))?;
    Ok((key.to_string(), value))
}

/// Writes `user` over `base` key by key; an error names the first key `base` does not have.
/// An enum's variant (a YAML tag such as `!Auto {...}`) given as a one-key map
/// `Retrieval: {...}` or as the tag itself replaces the default variant whole, except that
/// the same variant is merged key by key.
fn merge(base: &mut Value, user: &Value, at: &str) -> Result<(), String> {
    let path = |name: String| {
        if at.is_empty() {
            name
        } else {
            format!("{at}.{name}")
        }
    };
    match (base, user) {
        (Value::Mapping(b), Value::Mapping(u)) => {
            for (k, v) in u {
                let name = k
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("{k:?}"));
                match b.get_mut(k) {
                    Some(slot) => merge(slot, v, &path(name))?,
                    None => return Err(path(name)),
                }
            }
            Ok(())
        }
        (Value::Tagged(b), Value::Mapping(u)) if u.len() == 1 => {
            let (tag, value) = u.iter().next().expect("one entry");
            let tag = tag.as_str().ok_or_else(|| at.to_string())?;
            if b.tag == serde_yaml::value::Tag::new(tag) {
                return merge(&mut b.value, value, &path(tag.to_string()));
            }
            b.tag = serde_yaml::value::Tag::new(tag);
            b.value = value.clone();
            Ok(())
        }
        (b, u) => {
            *b = u.clone();
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn over(base: &str, user: &str) -> Result<Value, String> {
        let mut b: Value = serde_yaml::from_str(base).unwrap();
        merge(&mut b, &serde_yaml::from_str(user).unwrap(), "")?;
        Ok(b)
    }

    #[test]
    fn keys_left_out_keep_defaults_and_unknown_keys_are_named() {
        let v = over("a: 1\nb: {c: 2, d: 3}", "b: {d: 4}").unwrap();
        assert_eq!(
            v,
            serde_yaml::from_str::<Value>("a: 1\nb: {c: 2, d: 4}").unwrap()
        );
        assert_eq!(over("a: 1\nb: {c: 2}", "b: {e: 4}").unwrap_err(), "b.e");
    }

    #[test]
    fn another_enum_variant_replaces_the_default_and_the_same_one_merges() {
        let tagged = "pairs: !Retrieval {k: 20}";
        let want: Value = serde_yaml::from_str(tagged).unwrap();
        assert_eq!(over("pairs: !Auto {max: 60}", tagged).unwrap(), want);
        assert_eq!(
            over("pairs: !Auto {max: 60}", "pairs: {Retrieval: {k: 20}}").unwrap(),
            want
        );
        let merged = over("pairs: !Auto {max: 60, min: 2}", "pairs: {Auto: {max: 80}}").unwrap();
        let want: Value = serde_yaml::from_str("pairs: !Auto {max: 80, min: 2}").unwrap();
        assert_eq!(merged, want);
        assert_eq!(
            over("pairs: !Auto {max: 60}", "pairs: {Auto: {mux: 80}}").unwrap_err(),
            "pairs.Auto.mux"
        );
    }

    #[test]
    fn assignments_parse_as_yaml_and_build_one_tree() {
        let sets = [
            parse_assignment("a.b=0.5").unwrap(),
            parse_assignment("a.c=[1, 1, 1]").unwrap(),
            parse_assignment("d=null").unwrap(),
            parse_assignment("a.b=2").unwrap(),
        ];
        let want: Value = serde_yaml::from_str("{a: {b: 2, c: [1, 1, 1]}, d: null}").unwrap();
        assert_eq!(dotted_tree(&sets), want);
        assert!(parse_assignment("a.b").is_err());
        assert!(parse_assignment("a..b=1").is_err());
        assert!(parse_assignment("=1").is_err());
    }

    #[test]
    fn typed_overlay_names_the_origin_and_the_key() {
        let base = crate::train::TrainConfig::default();
        let sets = [("densify.grad_treshold".to_string(), Value::from(1.0))];
        let err = overlay_assignments(&base, &sets, "--set").unwrap_err();
        assert_eq!(err.to_string(), "--set: unknown key densify.grad_treshold");
        let sets = [("iterations".to_string(), Value::from("many"))];
        let err = overlay_assignments(&base, &sets, "--set").unwrap_err();
        assert!(matches!(err, ConfigError::Parse { .. }), "{err}");
        let cfg = overlay_str(&base, "", "empty").unwrap();
        assert_eq!(cfg, base);
    }
}
