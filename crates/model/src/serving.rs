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
}
