//! What an edge asks of a validated resource, so that it reads no raw field.

use crate::{OriginProtocol, ValidResource};

impl ValidResource {
    /// Whether origin requests go over HTTPS, for a viewer request that came over TLS or not
    /// (`originProtocol` MATCH follows the viewer).
    pub fn origin_https(&self, viewer_tls: bool) -> bool {
        match self.resource.origin_protocol {
            OriginProtocol::Http => false,
            OriginProtocol::Https => true,
            OriginProtocol::Match => viewer_tls,
        }
    }

    /// Whether edges serve it (an inactive resource keeps its configuration but no route).
    pub fn is_active(&self) -> bool {
        self.resource.active
    }

    /// Whether the authority of an absolute link (`host[:port]` as written, or `[v6]:port`)
    /// names one of the resource's hostnames, in any case: the test of whether a link in a
    /// playlist is the resource's own, to be given a token. An authority with user
    /// information (`own@other`) is not, whatever is before the `@`.
    pub fn is_own_host(&self, authority: &[u8]) -> bool {
        if authority.contains(&b'@') {
            return false;
        }
        let host = tollgate_token::url::host_of_authority(authority);
        self.hostnames()
            .iter()
            .any(|h| h.as_bytes().eq_ignore_ascii_case(host))
    }
}
