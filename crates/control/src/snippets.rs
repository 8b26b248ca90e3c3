//! Link-generator code in the customer's language, filled with their values, as the panel
//! shows it next to a signed link. Each prints one signed URL; each encodes the path for the
//! URL the way the edge decodes it, so paths with spaces and non-ASCII characters work.

use serde::Serialize;

/// The values a snippet is filled with.
pub struct Values<'a> {
    /// Secret key.
    pub key: &'a str,
    /// Decoded path, as signed.
    pub path: &'a str,
    /// Link lifetime in seconds.
    pub lifetime: i64,
    /// Client address, for type-0 resources.
    pub ip: Option<&'a str>,
    /// `https://cdn.example.com`.
    pub base: &'a str,
}

/// Ready-to-run snippets.
#[derive(Debug, Serialize)]
pub struct Snippets {
    /// PHP (php-cli).
    pub php: String,
    /// Python 3.
    pub python: String,
    /// POSIX shell with OpenSSL.
    pub openssl: String,
}

/// A single-quoted literal for PHP and Python (both escape `\` and `'` alike).
fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// A single-quoted shell word.
fn sh(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Fills the three snippets.
pub fn render(v: &Values<'_>) -> Snippets {
    let ip_php =
        v.ip.map(|ip| format!("$ip = {};\n", quoted(ip)))
            .unwrap_or_default();
    let ip_py =
        v.ip.map(|ip| format!("ip = {}\n", quoted(ip)))
            .unwrap_or_default();
    let ip_sh =
        v.ip.map(|ip| format!("ip={}\n", sh(ip)))
            .unwrap_or_default();
    let (php_ip, py_ip, sh_ip) = if v.ip.is_some() {
        ("$ip", "{ip}", "${ip}")
    } else {
        ("", "", "")
    };
    let php = format!(
        "<?php\n$secret = {key};\n$path = {path};\n{ip_php}$expires = time() + {life};\n\
         $md5 = md5(\"$expires$path{php_ip} $secret\", true);\n\
         $md5 = str_replace('=', '', strtr(base64_encode($md5), '+/', '-_'));\n\
         $url_path = implode('/', array_map('rawurlencode', explode('/', $path)));\n\
         echo {base} . \"$url_path?md5=$md5&expires=$expires\\n\";\n",
        key = quoted(v.key),
        path = quoted(v.path),
        life = v.lifetime,
        base = quoted(v.base),
    );
    let python = format!(
        "import base64, hashlib, time, urllib.parse\n\nsecret = {key}\npath = {path}\n{ip_py}\
         base = {base}\nexpires = int(time.time()) + {life}\n\
         digest = hashlib.md5(f\"{{expires}}{{path}}{py_ip} {{secret}}\".encode()).digest()\n\
         token = base64.urlsafe_b64encode(digest).decode().rstrip(\"=\")\n\
         print(f\"{{base}}{{urllib.parse.quote(path)}}?md5={{token}}&expires={{expires}}\")\n",
        key = quoted(v.key),
        path = quoted(v.path),
        life = v.lifetime,
        base = quoted(v.base),
    );
    let openssl = format!(
        "#!/bin/sh\nsecret={key}\npath={path}\n{ip_sh}expires=$(( $(date +%s) + {life} ))\n\
         token=$(printf '%s' \"${{expires}}${{path}}{sh_ip} ${{secret}}\" | openssl md5 -binary | openssl base64 | tr '+/' '-_' | tr -d '=')\n\
         # the path as it goes in the URL (percent-encoded where needed)\n\
         echo \"{base}{encoded}?md5=${{token}}&expires=${{expires}}\"\n",
        key = sh(v.key),
        path = sh(v.path),
        life = v.lifetime,
        base = v.base.replace(['"', '$', '`', '\\'], ""),
        encoded = {
            let mut out = Vec::new();
            tollgate_token::sign::encode_path(&mut out, v.path.as_bytes());
            String::from_utf8_lossy(&out).replace(['"', '$', '`', '\\'], "")
        },
    );
    Snippets {
        php,
        python,
        openssl,
    }
}
