//! The cache key, built in one place for requests and purges alike: a purge removes what a
//! request for the same URL stored only while both build the key the same way, so both call
//! [`KeyRule::key`].

use tollgate_model::ValidResource;
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

impl CacheKey {
    /// The path without its query.
    pub fn uri(&self) -> &[u8] {
        self.path.split(|&b| b == b'?').next().unwrap_or_default()
    }

    /// Whether the key holds a query (a purge of it then names that variant alone).
    pub fn has_query(&self) -> bool {
        self.path.contains(&b'?')
    }
}

/// How a resource keys its objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyRule {
    resource: u64,
    /// Keep the forwarded query in the key (`ignoreQueryString` off).
    with_query: bool,
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
    pub fn of(res: &ValidResource) -> KeyRule {
        KeyRule {
            resource: res.id,
            with_query: !res.ignore_query_string,
        }
    }

    /// The rule of a resource the edge does not know (deleted before its purge arrived): its
    /// purges still drop what it stored, as far as a rule that keeps the query can.
    pub fn of_unknown(resource: u64) -> KeyRule {
        KeyRule {
            resource,
            with_query: true,
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
        push_forwarded_query(&mut origin_target, target.args());
        let key_len = if self.with_query {
            origin_target.len()
        } else {
            path_len
        };
        Keyed {
            key: CacheKey {
                resource: self.resource,
                path: origin_target[..key_len].into(),
            },
            origin_target,
        }
    }
}

/// Appends `?` and the query without `md5` and `expires` (any case), which neither the origin
/// nor the cache key sees; appends nothing when no parameter is left.
fn push_forwarded_query(out: &mut Vec<u8>, args: &[u8]) {
    let mut first = true;
    for p in params(args) {
        if p.name.eq_ignore_ascii_case(b"md5") || p.name.eq_ignore_ascii_case(b"expires") {
            continue;
        }
        out.push(if first { b'?' } else { b'&' });
        out.extend_from_slice(p.text);
        first = false;
    }
}

#[cfg(test)]
mod tests {
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
        let k = |t| key(rule, t).0;
        assert_eq!(k("/a?md5=a&expires=1"), "/a");
        assert_eq!(k("/a?x=1&MD5=a&y=2&Expires=3"), "/a?x=1&y=2");
        assert_eq!(k("/a?md5x=1&&expiresy=2"), "/a?md5x=1&expiresy=2");
        assert_eq!(k("/a%20b/../c%41?"), "/cA");
    }

    #[test]
    fn ignore_query_string_keeps_the_query_for_the_origin_only() {
        let rule = KeyRule {
            resource: 1,
            with_query: false,
        };
        assert_eq!(
            key(rule, "/a?x=1&md5=z"),
            ("/a".to_owned(), "/a?x=1".to_owned())
        );
    }
}
