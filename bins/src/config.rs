//! YAML configuration files laid over defaults: keys a file leaves out keep their defaults,
//! unknown keys are an error naming the key (a misspelt knob must not be silently ignored).

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_yaml::Value;

use crate::AnyResult;

/// `base` with the YAML file at `path` laid over it.
pub fn load_over<T: Serialize + DeserializeOwned>(base: &T, path: &Path) -> AnyResult<T> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let user: Value = serde_yaml::from_str(&text)
        .map_err(|e| format!("invalid YAML in {}: {e}", path.display()))?;
    let mut merged = serde_yaml::to_value(base)?;
    if !user.is_null() {
        overlay(&mut merged, &user, "")
            .map_err(|k| format!("{}: unknown key {k}", path.display()))?;
    }
    serde_yaml::from_value(merged)
        .map_err(|e| format!("invalid configuration in {}: {e}", path.display()).into())
}

/// Writes `user` over `base` key by key; an error names the first key `base` does not have.
/// Enums (YAML tags such as `!Auto {...}`) are replaced whole; a one-key map `Retrieval: {...}`
/// is accepted for the tag `!Retrieval {...}`.
fn overlay(base: &mut Value, user: &Value, at: &str) -> Result<(), String> {
    match (base, user) {
        (Value::Mapping(b), Value::Mapping(u)) => {
            for (k, v) in u {
                let name = k
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("{k:?}"));
                let path = if at.is_empty() {
                    name
                } else {
                    format!("{at}.{name}")
                };
                match b.get_mut(k) {
                    Some(slot) => overlay(slot, v, &path)?,
                    None => return Err(path),
                }
            }
            Ok(())
        }
        (b @ Value::Tagged(_), Value::Mapping(u)) if u.len() == 1 => {
            let (tag, value) = u.iter().next().expect("one entry");
            let tag = tag.as_str().ok_or_else(|| at.to_string())?;
            *b = Value::Tagged(Box::new(serde_yaml::value::TaggedValue {
                tag: serde_yaml::value::Tag::new(tag),
                value: value.clone(),
            }));
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
        overlay(&mut b, &serde_yaml::from_str(user).unwrap(), "")?;
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
    fn another_enum_variant_replaces_the_default() {
        let tagged = "pairs: !Retrieval {k: 20}";
        let want: Value = serde_yaml::from_str(tagged).unwrap();
        assert_eq!(over("pairs: !Auto {max: 60}", tagged).unwrap(), want);
        assert_eq!(
            over("pairs: !Auto {max: 60}", "pairs: {Retrieval: {k: 20}}").unwrap(),
            want
        );
    }

    /// Each file under configs/ loads with its command's loader, so a renamed knob cannot
    /// leave a shipped config broken.
    #[test]
    fn shipped_configs_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
        let run = crate::run_cmd::RunConfig::load(Some(&dir.join("large-unordered.yaml")), false)
            .expect("large-unordered.yaml");
        assert_eq!(run.sfm.mapper.final_rounds, 5);
        let train =
            splat_core::train::TrainConfig::from_yaml_file(&dir.join("unbounded-train.yaml"))
                .expect("unbounded-train.yaml");
        let default = splat_core::train::TrainConfig::default();
        assert_eq!(train.densify.opacity_reset_interval, 0);
        assert!((train.progressive.ramp_fraction - 0.3333).abs() < 1e-6);
        assert_eq!(train.iterations, default.iterations);
        let names: Vec<_> = std::fs::read_dir(&dir)
            .expect("configs/")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names.len(), 2, "a new config needs a line here: {names:?}");
    }
}
