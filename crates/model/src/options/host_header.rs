//! `options.hostHeader`: the Host header of origin requests.

use crate::host::valid_host_port;
use crate::options::OptionToggle;
use crate::validate::FieldErrors;

/// The Host header for origin requests: the option's value when on, else the cname
/// (lower-cased).
pub(crate) fn validate(
    t: Option<&OptionToggle<String>>,
    cname: &str,
    errors: &mut FieldErrors,
) -> String {
    if let Some(t) = t {
        // Checked even when off: it is stored and served back.
        if (t.enabled || !t.value.is_empty()) && !valid_host_port(&t.value) {
            errors.push(
                "options.hostHeader.value",
                format!(
                    "{:?} is not a host[:port] (a hostname, an IPv4 address or [IPv6], and \
                     a port of 1 to 65535)",
                    t.value
                ),
            );
        }
    }
    match t {
        Some(t) if t.enabled => t.value.clone(),
        _ => cname.to_ascii_lowercase(),
    }
}
