//! Link-generator programs in the customer's language, filled with their values. The programs
//! are the files in `snippets/` at the repository root, which `docs/signing.md` presents: one
//! source for the docs and the panel. Each value sits on a line tagged `tollgate:NAME`; filling
//! replaces that line's literal (the first single-quoted string, or the number after `=`).

use serde::Serialize;

const PHP: &str = include_str!("../../../snippets/sign.php");
const PYTHON: &str = include_str!("../../../snippets/sign.py");
const NODE: &str = include_str!("../../../snippets/sign.js");
const SHELL: &str = include_str!("../../../snippets/sign.sh");

/// The values a program is filled with.
pub struct Values<'a> {
    /// Secret key.
    pub key: &'a str,
    /// Decoded path, as signed.
    pub path: &'a str,
    /// Link lifetime in seconds.
    pub lifetime: i64,
    /// Round the expiry up to a multiple of this many seconds (0: off).
    pub window: i64,
    /// Client address, for type-0 resources.
    pub ip: Option<&'a str>,
    /// `https://cdn.example.com`.
    pub base: &'a str,
}

/// Ready-to-run programs.
#[derive(Debug, Serialize)]
pub struct Snippets {
    /// PHP (php-cli).
    pub php: String,
    /// Python 3.
    pub python: String,
    /// Node.js.
    pub node: String,
    /// POSIX shell with OpenSSL.
    pub openssl: String,
}

#[derive(Clone, Copy)]
enum Quoting {
    /// `'...'` with `\` and `'` escaped (PHP, Python, JavaScript).
    Backslash,
    /// `'...'` closed and reopened around `'` (POSIX shell).
    Shell,
}

fn quote(s: &str, q: Quoting) -> String {
    match q {
        Quoting::Backslash => format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")),
        Quoting::Shell => format!("'{}'", s.replace('\'', "'\\''")),
    }
}

/// Replaces the literal on the line tagged `tollgate:{name}`.
fn fill_line(line: &str, value: &Literal<'_>, q: Quoting) -> String {
    match value {
        Literal::Text(text) => {
            let Some(start) = line.find('\'') else {
                return line.to_owned();
            };
            let Some(len) = line[start + 1..].find('\'') else {
                return line.to_owned();
            };
            format!(
                "{}{}{}",
                &line[..start],
                quote(text, q),
                &line[start + len + 2..]
            )
        }
        Literal::Number(n) => {
            let Some(eq) = line.find('=') else {
                return line.to_owned();
            };
            let rest = &line[eq + 1..];
            let digits_at = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(0);
            let digits_len = rest[digits_at..]
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len() - digits_at);
            format!(
                "{}={}{n}{}",
                &line[..eq],
                &rest[..digits_at],
                &rest[digits_at + digits_len..]
            )
        }
    }
}

enum Literal<'a> {
    Text(&'a str),
    Number(i64),
}

fn fill(template: &str, v: &Values<'_>, q: Quoting) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    for line in template.lines() {
        let tag = line
            .split_once("tollgate:")
            .map(|(_, rest)| rest.split_whitespace().next().unwrap_or(""));
        let value = match tag {
            Some("key") => Some(Literal::Text(v.key)),
            Some("base") => Some(Literal::Text(v.base)),
            Some("path") => Some(Literal::Text(v.path)),
            Some("ip") => Some(Literal::Text(v.ip.unwrap_or(""))),
            Some("lifetime") => Some(Literal::Number(v.lifetime)),
            Some("window") => Some(Literal::Number(v.window)),
            _ => None,
        };
        match value {
            Some(lit) => out.push_str(&fill_line(line, &lit, q)),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

impl Snippets {
    /// The program for `lang`: `php`, `python`, `node`, or `sh` (the OpenSSL one).
    pub fn for_lang(&self, lang: &str) -> String {
        match lang {
            "php" => self.php.clone(),
            "python" => self.python.clone(),
            "node" => self.node.clone(),
            _ => self.openssl.clone(),
        }
    }
}

/// Fills every program.
pub fn render(v: &Values<'_>) -> Snippets {
    Snippets {
        php: fill(PHP, v, Quoting::Backslash),
        python: fill(PYTHON, v, Quoting::Backslash),
        node: fill(NODE, v, Quoting::Backslash),
        openssl: fill(SHELL, v, Quoting::Shell),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Values<'static> {
        Values {
            key: "k'e\\y",
            path: "/a b.mp4",
            lifetime: 60,
            window: 300,
            ip: Some("1.2.3.4"),
            base: "http://cdn.test",
        }
    }

    #[test]
    fn fills_tagged_lines_only() {
        let s = render(&values());
        assert!(s.php.contains(r"$secret   = 'k\'e\\y';"), "{}", s.php);
        assert!(s.php.contains("$lifetime = 60;"), "{}", s.php);
        assert!(s.php.contains("$window   = 300;"), "{}", s.php);
        assert!(s.python.contains("ip = '1.2.3.4'"), "{}", s.python);
        assert!(s.node.contains("const path = '/a b.mp4';"), "{}", s.node);
        assert!(s.openssl.contains(r"secret='k'\''e\y'"), "{}", s.openssl);
        assert_eq!(
            PHP.lines().count(),
            s.php.lines().count(),
            "no line added or lost"
        );
    }

    #[test]
    fn every_program_tags_every_value() {
        for (name, t) in [
            ("php", PHP),
            ("python", PYTHON),
            ("node", NODE),
            ("sh", SHELL),
        ] {
            for tag in ["key", "base", "path", "ip", "lifetime", "window"] {
                assert_eq!(
                    t.matches(&format!("tollgate:{tag} ")).count(),
                    1,
                    "{name}: tollgate:{tag}"
                );
            }
        }
    }
}
