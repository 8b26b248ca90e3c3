//! The cache key, built in one place for requests and purges alike: a purge removes what a
//! request for the same URL stored only while both build the key the same way, so both call
//! [`KeyRule::key`].

use http::{HeaderMap, HeaderName};
use tollgate_model::{QueryKey, ValidResource};
use tollgate_token::query::params;
use tollgate_token::sign::encode_path;
use tollgate_token::Target;

/// What identifies a stored object: the resource and its normalised path with the query that
/// reaches the origin.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct CacheKey {
    pub resource: u64,
    /// `$uri` (encoded as it is sent to the origin), then `?` and the forwarded query when the
    /// resource keeps it in the key.
    pub path: Box<[u8]>,
}

/// Separates a key's path from the request header values its response varies on: a byte no
/// request target carries (`encode_path` escapes it, hyper refuses it in a query).
const VARIANT: u8 = 0;

/// Variants stored per URL at most, for a response with `Vary`; others are not stored.
pub const MAX_VARIANTS: usize = 16;

impl CacheKey {
    /// The path and query, without the variant.
    pub fn base(&self) -> &[u8] {
        self.path
            .split(|&b| b == VARIANT)
            .next()
            .unwrap_or_default()
    }

    /// The path without its query.
    pub fn uri(&self) -> &[u8] {
        self.base().split(|&b| b == b'?').next().unwrap_or_default()
    }

    /// Whether the key holds a query (a purge of it then names that variant alone).
    pub fn has_query(&self) -> bool {
        self.base().contains(&b'?')
    }

    /// Whether this is the key of one variant of a URL (see [`CacheKey::variant`]).
    pub fn is_variant(&self) -> bool {
        self.path.contains(&VARIANT)
    }

    /// The key of the URL this key is a variant of (itself when it is none).
    pub fn primary(&self) -> CacheKey {
        CacheKey {
            resource: self.resource,
            path: self.base().into(),
        }
    }

    /// The key of the variant a request with `headers` selects, of a response of this URL
    /// varying on `fields` (RFC 9111 4.1): the URL's key and a 128-bit keyed hash of, for each
    /// field, its values normalised (lines joined, list members trimmed, in lower case where
    /// the field is case-insensitive; an absent field differs from an empty one). Hashed, so a
    /// key's size does not grow with a viewer's headers and no `Cookie` value is kept; keyed
    /// with this process's random seed, so no one can aim two requests at one variant (a
    /// restart starts variants afresh: the disk tier's old ones are never found again).
    pub fn variant(&self, fields: &[HeaderName], headers: &HeaderMap) -> CacheKey {
        use std::hash::{BuildHasher, Hasher};
        static SEEDS: std::sync::OnceLock<[std::hash::RandomState; 2]> = std::sync::OnceLock::new();
        let seeds = SEEDS.get_or_init(Default::default);
        let mut h = [seeds[0].build_hasher(), seeds[1].build_hasher()];
        let mut put = |bytes: &[u8]| h.iter_mut().for_each(|h| h.write(bytes));
        for name in fields {
            put(name.as_str().as_bytes());
            put(b":");
            let mut lines = headers.get_all(name).iter().peekable();
            if lines.peek().is_none() {
                put(&[1]); // absent
            }
            let fold = matches!(
                name.as_str(),
                "accept" | "accept-language" | "accept-charset" | "origin"
            );
            let mut first = true;
            for member in lines.flat_map(|v| v.as_bytes().split(|&b| b == b',')) {
                let member = member.trim_ascii();
                if member.is_empty() {
                    continue;
                }
                if !first {
                    put(b",");
                }
                first = false;
                if fold {
                    for b in member {
                        put(&[b.to_ascii_lowercase()]);
                    }
                } else {
                    put(member);
                }
            }
            put(b"\n");
        }
        let mut path = Vec::with_capacity(self.base().len() + 17);
        path.extend_from_slice(self.base());
        path.push(VARIANT);
        for h in h {
            path.extend_from_slice(&h.finish().to_le_bytes());
        }
        CacheKey {
            resource: self.resource,
            path: path.into(),
        }
    }
}

/// What a response's `Vary` asks of a shared cache.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Vary {
    /// Nothing: no `Vary`, or only `Accept-Encoding` (the edge asks origins for the identity
    /// encoding and its key ignores that field).
    Nothing,
    /// A variant per value of these request fields (lower case, each once, in order).
    Fields(Vec<HeaderName>),
    /// `Vary: *`, or a field name that is not one: no later request matches.
    Never,
}

/// The `Vary` of a response's `headers`.
pub(crate) fn vary_of(headers: &HeaderMap) -> Vary {
    let mut fields: Vec<HeaderName> = Vec::new();
    for v in headers.get_all(http::header::VARY) {
        let Ok(v) = v.to_str() else {
            return Vary::Never;
        };
        for f in v.split(',').map(str::trim).filter(|f| !f.is_empty()) {
            if f == "*" {
                return Vary::Never;
            }
            let Ok(name) = HeaderName::from_bytes(f.as_bytes()) else {
                return Vary::Never;
            };
            if name != http::header::ACCEPT_ENCODING && !fields.contains(&name) {
                fields.push(name);
            }
        }
    }
    if fields.is_empty() {
        Vary::Nothing
    } else {
        Vary::Fields(fields)
    }
}

/// How a resource keys its objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyRule {
    resource: u64,
    /// Which forwarded query parameters the key keeps (`ignoreQueryString`,
    /// `query_params_whitelist`, `query_params_blacklist`).
    query: QueryKey,
    /// `limit_bandwidth` dynamic: `speed` and `buffer` stay out of the key.
    without_rate: bool,
}

/// A request's key and the target its origin request is sent to (the key's path, plus the
/// forwarded query when the key leaves it out).
#[derive(Clone)]
pub(crate) struct Keyed {
    pub key: CacheKey,
    /// Encoded path and forwarded query: ASCII from `encode_path`, plus the query bytes as the
    /// client sent them.
    pub origin_target: Vec<u8>,
}

impl KeyRule {
    /// The rule of `res` (a clone of its query rule: no allocation but for a parameter list).
    pub fn of(res: &ValidResource) -> KeyRule {
        KeyRule {
            resource: res.id,
            query: res.query_key.clone(),
            without_rate: res.bandwidth == Some(tollgate_model::Bandwidth::Dynamic),
        }
    }

    /// The rule of a resource the edge does not know (deleted before its purge arrived): its
    /// purges still drop what it stored, as far as a rule that keeps the query can.
    pub fn of_unknown(resource: u64) -> KeyRule {
        KeyRule {
            resource,
            query: QueryKey::All,
            without_rate: false,
        }
    }

    pub fn resource(&self) -> u64 {
        self.resource
    }

    /// The key of `target`; one buffer serves as the key and the origin's request target.
    pub fn key(&self, target: &Target<'_>) -> Keyed {
        // Room for a few escapes too, so that a path with a space is not copied twice.
        let mut origin_target = Vec::with_capacity(target.uri().len() + target.args().len() + 32);
        encode_path(&mut origin_target, target.uri());
        let path_len = origin_target.len();
        push_forwarded_query(&mut origin_target, target.args(), |_| true);
        let path: Box<[u8]> = match &self.query {
            QueryKey::All if !self.without_rate => origin_target.as_slice().into(),
            QueryKey::Nothing => origin_target[..path_len].into(),
            rule => {
                let mut key = origin_target[..path_len].to_vec();
                push_forwarded_query(&mut key, target.args(), |name| {
                    rule.keeps(name)
                        && !(self.without_rate && (name == b"speed" || name == b"buffer"))
                });
                key.into()
            }
        };
        Keyed {
            key: CacheKey {
                resource: self.resource,
                path,
            },
            origin_target,
        }
    }
}

/// Appends `?` and the query without `md5` and `expires` (any case), which neither the origin
/// nor the cache key sees, and without the parameters `keep` refuses (by name); appends
/// nothing when no parameter is left.
fn push_forwarded_query(out: &mut Vec<u8>, args: &[u8], keep: impl Fn(&[u8]) -> bool) {
    let mut first = true;
    for p in params(args) {
        if p.name.eq_ignore_ascii_case(b"md5")
            || p.name.eq_ignore_ascii_case(b"expires")
            || !keep(p.name)
        {
            continue;
        }
        out.push(if first { b'?' } else { b'&' });
        out.extend_from_slice(p.text);
        first = false;
    }
}

#[cfg(test)]
mod tests {
    fn hm(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, http::HeaderValue::from_static(v));
        }
        m
    }

    #[test]
    fn variants_are_keyed_by_normalised_field_values() {
        let url = CacheKey {
            resource: 3,
            path: b"/a.txt?x=1".as_slice().into(),
        };
        let lang = [HeaderName::from_static("accept-language")];
        let v = |pairs| url.variant(&lang, &hm(pairs));
        let fr = v(&[("accept-language", "fr, en;q=0.5")]);
        // RFC 9111 4.1: whitespace between list members, lines, and (for a case-insensitive
        // field) case do not make another variant.
        assert_eq!(fr, v(&[("accept-language", "FR,en;q=0.5")]));
        assert_eq!(
            fr,
            v(&[("accept-language", "fr"), ("accept-language", " en;q=0.5 ")])
        );
        assert_ne!(
            fr,
            v(&[("accept-language", "en, fr;q=0.5")]),
            "order matters"
        );
        assert_ne!(v(&[]), v(&[("accept-language", "")]), "absent is not empty");
        // A case-sensitive field keeps its case.
        let cookie = [HeaderName::from_static("x-tenant")];
        assert_ne!(
            url.variant(&cookie, &hm(&[("x-tenant", "Acme")])),
            url.variant(&cookie, &hm(&[("x-tenant", "acme")]))
        );
        // The variant names its URL: base, path, query, purges.
        assert!(fr.is_variant() && !url.is_variant());
        // Hashed: as long as the URL's key and 17 bytes, whatever the viewer sent.
        let long = "x".repeat(8000);
        let big = url.variant(&lang, &{
            let mut m = HeaderMap::new();
            m.insert(
                "accept-language",
                http::HeaderValue::from_str(&long).unwrap(),
            );
            m
        });
        assert_eq!(big.path.len(), url.path.len() + 17);
        assert_eq!(fr.path.len(), url.path.len() + 17);
        assert_eq!(fr.base(), b"/a.txt?x=1");
        assert_eq!(fr.uri(), b"/a.txt");
        assert!(fr.has_query());
        assert_eq!(fr.primary(), url);
        assert_eq!(
            fr.primary()
                .variant(&lang, &hm(&[("accept-language", "fr,en;q=0.5")])),
            fr
        );
    }

    #[test]
    fn vary_is_read_as_a_shared_cache_must() {
        let v = |pairs| vary_of(&hm(pairs));
        assert_eq!(v(&[]), Vary::Nothing);
        assert_eq!(v(&[("vary", "Accept-Encoding")]), Vary::Nothing);
        assert_eq!(v(&[("vary", " , ")]), Vary::Nothing);
        assert_eq!(
            v(&[
                ("vary", "Accept-Language, accept-encoding"),
                ("vary", "X-Tenant, accept-language")
            ]),
            Vary::Fields(vec![
                HeaderName::from_static("accept-language"),
                HeaderName::from_static("x-tenant")
            ])
        );
        assert_eq!(v(&[("vary", "Origin, *")]), Vary::Never);
        assert_eq!(v(&[("vary", "bad name")]), Vary::Never);
    }

    use super::*;

    fn key(rule: KeyRule, target: &str) -> (String, String) {
        let t = Target::parse(target.as_bytes()).unwrap();
        let k = rule.key(&t);
        (
            String::from_utf8(k.key.path.into()).unwrap(),
            String::from_utf8(k.origin_target).unwrap(),
        )
    }

    #[test]
    fn token_params_never_reach_the_key_or_the_origin() {
        let rule = KeyRule::of_unknown(1);
        let k = |t| key(rule.clone(), t).0;
        assert_eq!(k("/a?md5=a&expires=1"), "/a");
        assert_eq!(k("/a?x=1&MD5=a&y=2&Expires=3"), "/a?x=1&y=2");
        assert_eq!(k("/a?md5x=1&&expiresy=2"), "/a?md5x=1&expiresy=2");
        assert_eq!(k("/a%20b/../c%41?"), "/cA");
    }

    #[test]
    fn ignore_query_string_keeps_the_query_for_the_origin_only() {
        let rule = KeyRule {
            resource: 1,
            query: QueryKey::Nothing,
            without_rate: false,
        };
        assert_eq!(
            key(rule.clone(), "/a?x=1&md5=z"),
            ("/a".to_owned(), "/a?x=1".to_owned())
        );
    }

    #[test]
    fn whitelist_blacklist_and_rate_parameters_shape_the_key_only() {
        let only = QueryKey::Only(vec!["q".into(), "lang".into()]);
        let rule = KeyRule {
            resource: 1,
            query: only,
            without_rate: false,
        };
        assert_eq!(
            key(rule, "/a?utm=1&q=x&md5=z&lang=fr"),
            (
                "/a?q=x&lang=fr".to_owned(),
                "/a?utm=1&q=x&lang=fr".to_owned()
            )
        );
        let except = QueryKey::Except(vec!["utm".into()]);
        let rule = KeyRule {
            resource: 1,
            query: except,
            without_rate: true,
        };
        assert_eq!(
            key(rule, "/a?utm=1&q=x&speed=50k&buffer=1m"),
            (
                "/a?q=x".to_owned(),
                "/a?utm=1&q=x&speed=50k&buffer=1m".to_owned()
            )
        );
        let all = QueryKey::All;
        let rule = KeyRule {
            resource: 1,
            query: all,
            without_rate: true,
        };
        assert_eq!(key(rule, "/a?speed=1k").0, "/a");
    }
}
