//! Integration tests of tollgate-token, in one binary: frozen vectors, the differential test
//! against Debian's nginx, and property tests.

mod nginx_diff;
mod props;
mod vectors;
