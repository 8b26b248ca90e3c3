//! `options.allowedHttpMethods`: the methods a resource answers (Gcore's values: `GET`,
//! `HEAD`, `POST`, `PUT`, `PATCH`, `DELETE`, `OPTIONS`). Without the option, `GET` and `HEAD`.

use crate::options::OptionToggle;
use crate::validate::FieldErrors;

/// The methods Gcore accepts in the option, in its order.
pub const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// A set of [`METHODS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Methods(u8);

impl Methods {
    /// `GET` and `HEAD`: what a resource answers without the option.
    pub const DEFAULT: Methods = Methods(0b11);

    /// Whether `method` (as it is on the wire) is in the set.
    pub fn allows(self, method: &str) -> bool {
        METHODS
            .iter()
            .position(|m| *m == method)
            .is_some_and(|i| self.0 & (1 << i) != 0)
    }

    /// The methods of the set, for an `Allow` header.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        METHODS
            .iter()
            .enumerate()
            .filter(move |(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, m)| *m)
    }
}

/// The methods in force: the option's value when enabled, else [`Methods::DEFAULT`]. Its
/// value is checked whether it is enabled or not (it is stored and served back).
pub(crate) fn validate(t: Option<&OptionToggle<Vec<String>>>, errors: &mut FieldErrors) -> Methods {
    let Some(t) = t else {
        return Methods::DEFAULT;
    };
    let mut set = 0u8;
    for (i, m) in t.value.iter().enumerate() {
        match METHODS.iter().position(|k| k == m) {
            Some(bit) => set |= 1 << bit,
            None => errors.push(
                format!("options.allowedHttpMethods.value[{i}]"),
                format!("{m:?} is not one of {}", METHODS.join(", ")),
            ),
        }
    }
    if t.enabled && t.value.is_empty() {
        errors.push(
            "options.allowedHttpMethods.value",
            "at least one method, when the option is enabled",
        );
    }
    if t.enabled {
        Methods(set)
    } else {
        Methods::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(enabled: bool, value: &[&str]) -> Result<Methods, Vec<String>> {
        let mut e = FieldErrors::default();
        let t = OptionToggle {
            enabled,
            value: value.iter().map(|s| s.to_string()).collect(),
        };
        let m = validate(Some(&t), &mut e);
        let errors = e.into_messages();
        if errors.is_empty() {
            Ok(m)
        } else {
            Err(errors)
        }
    }

    #[test]
    fn gcore_values_and_their_refusals() {
        let m = check(true, &["GET", "POST", "OPTIONS"]).unwrap();
        assert!(m.allows("GET") && m.allows("POST") && m.allows("OPTIONS"));
        assert!(!m.allows("HEAD") && !m.allows("DELETE") && !m.allows("get"));
        assert_eq!(m.names().collect::<Vec<_>>(), ["GET", "POST", "OPTIONS"]);
        assert_eq!(check(false, &["POST"]).unwrap(), Methods::DEFAULT);
        assert_eq!(
            validate(None, &mut FieldErrors::default()),
            Methods::DEFAULT
        );
        let e = check(true, &["GET", "TRACE"]).unwrap_err();
        assert_eq!(e.len(), 1);
        assert!(e[0].contains("value[1]") && e[0].contains("TRACE"), "{e:?}");
        assert!(check(false, &["get"]).is_err(), "checked even when off");
        assert!(check(true, &[]).unwrap_err()[0].contains("at least one"));
    }
}
