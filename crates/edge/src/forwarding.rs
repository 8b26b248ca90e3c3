//! The request side of query string forwarding: deciding whether a response is a manifest to
//! rewrite, with what, and rewriting the buffered body of the response before it is sent. The
//! cache keeps the origin's body; the rewrite is per request, so per-viewer tokens never split
//! the cache.

use std::net::IpAddr;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use tollgate_model::{Forwarding, ValidResource};
use tollgate_token::verify::LinkParams;
use tollgate_token::{RemoteAddr, Target};

use crate::body::EdgeBody;
use crate::origin::OriginError;
use crate::Edge;
use tollgate_manifest::{self as manifest, Addition, Kind, Rewrite};

/// Largest manifest rewritten when it is too large for the cache (and so read whole for each
/// request); a larger one is answered 502.
pub const MANIFEST_CAP: u64 = 64 << 20;

/// A manifest response to rewrite, decided from the request.
pub struct Plan {
    kind: Kind,
    /// `Copy`: the parameters to add. Sign mode: the request's `expires`.
    params: Vec<u8>,
    sign: Option<Signing>,
    /// Encoded directory of the playlist, for resolving relative links.
    base_dir: Vec<u8>,
    /// Decoded directory of the playlist: the sign mode's scope.
    scope: Vec<u8>,
}

struct Signing {
    ip: Option<RemoteAddr>,
}

/// The names of the parameters a resource forwards, for the "already carries one" check.
const TOKEN_PARAMS: [&[u8]; 2] = [b"md5", b"expires"];

/// Whether (and how) the response to this request is rewritten.
pub fn plan(res: &ValidResource, target: &Target<'_>, client: IpAddr) -> Option<Plan> {
    let f: &Forwarding = res.forwarding.as_ref()?;
    let uri = target.uri();
    let ext = manifest::extension(uri)?;
    if !f.from_types.contains(&ext) {
        return None;
    }
    let kind = Kind::of_extension(&ext)?;
    let dir_end = uri.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
    let scope = uri[..dir_end].to_vec();
    let mut base_dir = Vec::with_capacity(scope.len());
    tollgate_token::sign::encode_path(&mut base_dir, &scope);
    let (params, sign) = match (&res.secure_key, f.sign_each_directory) {
        (Some(sk), true) => {
            let expires = LinkParams::from_args(target.args()).expires?.to_vec();
            let ip = sk.bind_client_ip.then(|| RemoteAddr::new(client));
            (expires, Some(Signing { ip }))
        }
        _ => {
            let mut params = Vec::new();
            for p in target
                .args()
                .split(|&b| b == b'&')
                .filter(|p| !p.is_empty())
            {
                let name = p.split(|&b| b == b'=').next().unwrap_or_default();
                if f.keys.forwards(name) {
                    if !params.is_empty() {
                        params.push(b'&');
                    }
                    params.extend_from_slice(p);
                }
            }
            if params.is_empty() {
                return None;
            }
            (params, None)
        }
    };
    Some(Plan {
        kind,
        params,
        sign,
        base_dir,
        scope,
    })
}

/// Request headers without the ones a rewritten body cannot honour (ranges and validators
/// refer to the origin's bytes, not to what this viewer gets).
pub fn request_headers(req: &HeaderMap) -> std::borrow::Cow<'_, HeaderMap> {
    const DROPPED: [header::HeaderName; 4] = [
        header::RANGE,
        header::IF_RANGE,
        header::IF_NONE_MATCH,
        header::IF_MODIFIED_SINCE,
    ];
    if !DROPPED.iter().any(|n| req.contains_key(n)) {
        return std::borrow::Cow::Borrowed(req);
    }
    let mut h = req.clone();
    for name in DROPPED {
        h.remove(name);
    }
    std::borrow::Cow::Owned(h)
}

/// Rewrites a 200 response in place. Returns the body bytes now sent, `None` when the response
/// is left as it is. A body too large for the cache arrives streamed: it is read whole here
/// (up to [`MANIFEST_CAP`]) to be rewritten.
pub async fn apply(
    edge: &Edge,
    plan: &Plan,
    res: &ValidResource,
    resp: &mut Response<EdgeBody>,
    head: bool,
) -> Result<Option<u64>, OriginError> {
    if resp.status() != StatusCode::OK {
        return Ok(None);
    }
    if !head && matches!(resp.body(), EdgeBody::Stream(_)) {
        if let EdgeBody::Stream(origin) = std::mem::replace(resp.body_mut(), EdgeBody::empty()) {
            let bytes = edge
                .origin
                .read_body(origin.into_incoming(), MANIFEST_CAP, None)
                .await?;
            *resp.body_mut() = EdgeBody::Full(Some(bytes));
        }
    }
    let body = match resp.body() {
        EdgeBody::Full(Some(b)) => b.clone(),
        // HEAD: the length of this viewer's body is not known without rewriting it; say
        // nothing rather than the origin's length.
        EdgeBody::Full(None) if head => {
            for name in [header::CONTENT_LENGTH, header::ETAG, header::LAST_MODIFIED] {
                resp.headers_mut().remove(name);
            }
            return Ok(Some(0));
        }
        // Empty.
        _ => return Ok(None),
    };
    let hosts = res.hostnames();
    let own_host = |h: &[u8]| {
        let host = if h.starts_with(b"[") {
            &h[..h.iter().position(|&b| b == b']').map_or(h.len(), |i| i + 1)]
        } else {
            &h[..h.iter().position(|&b| b == b':').unwrap_or(h.len())]
        };
        hosts
            .iter()
            .any(|x| x.as_bytes().eq_ignore_ascii_case(host))
    };
    let f = res.forwarding.as_ref();
    let to_types = f.map(|f| f.to_types.as_slice()).unwrap_or_default();
    let addition = match (&plan.sign, &res.secure_key) {
        (Some(s), Some(sk)) => Addition::SignEachDirectory {
            key: &sk.keys[0],
            expires: &plan.params,
            ip: s.ip,
            scope: &plan.scope,
        },
        _ => Addition::Copy(&plan.params),
    };
    let rewritten = manifest::rewrite(
        plan.kind,
        &body,
        &Rewrite {
            to_types,
            param_names: &TOKEN_PARAMS,
            addition,
            base_dir: &plan.base_dir,
            own_host: &own_host,
        },
    );
    let len = rewritten.len() as u64;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.remove(header::TRANSFER_ENCODING);
    // The body is this viewer's: no validators, no ranges, no shared caching downstream.
    h.remove(header::ETAG);
    h.remove(header::LAST_MODIFIED);
    h.remove(header::ACCEPT_RANGES);
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    *resp.body_mut() = EdgeBody::Full(Some(Bytes::from(rewritten)));
    Ok(Some(len))
}
