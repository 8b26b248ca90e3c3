//! The frozen vectors in `testdata/vectors/`.

use serde::Deserialize;

use crate::repo_root;

/// `secure-link-nginx-1.22.json`: requests and the status nginx gave them.
#[derive(Debug, Deserialize)]
pub struct StatusVectors {
    /// Where the statuses come from.
    pub source: String,
    /// The secure-link key of the nginx that answered.
    pub key: String,
    /// A time at which every status holds.
    pub now: i64,
    /// The cases.
    pub cases: Vec<StatusCase>,
}

/// One request and its status.
#[derive(Debug, Deserialize)]
pub struct StatusCase {
    /// Test name.
    pub name: String,
    /// Request target, byte for byte (UTF-8 in the file).
    pub target: String,
    /// Client address as sent in `X-Forwarded-For`; `None` for the type-2 server.
    pub ip: Option<String>,
    /// Status nginx answered.
    pub status: u16,
}

/// `gcore-doc.json`: the documented OpenSSL examples.
#[derive(Debug, Deserialize)]
pub struct DocVectors {
    /// Where they come from.
    pub source: String,
    /// The cases.
    pub cases: Vec<DocCase>,
}

/// One documented signing example.
#[derive(Debug, Deserialize)]
pub struct DocCase {
    /// Test name.
    pub name: String,
    /// Key.
    pub key: String,
    /// Expiry.
    pub expires: i64,
    /// Path.
    pub path: String,
    /// Client address, if bound.
    pub ip: Option<String>,
    /// The string that is hashed.
    pub hashed: String,
    /// The token.
    pub token: String,
}

fn load<T: serde::de::DeserializeOwned>(name: &str) -> T {
    let path = repo_root().join("testdata/vectors").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Loads `secure-link-nginx-1.22.json`.
pub fn status_vectors() -> StatusVectors {
    load("secure-link-nginx-1.22.json")
}

/// Loads `gcore-doc.json`.
pub fn doc_vectors() -> DocVectors {
    load("gcore-doc.json")
}
