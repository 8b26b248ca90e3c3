//! Integration tests of tollgate-token, in one binary: frozen vectors, the differential test
//! against Debian's nginx, and property tests.
#![allow(clippy::unwrap_used)] // test code: a panic is how it fails

mod nginx_diff;
mod props;
mod vectors;
