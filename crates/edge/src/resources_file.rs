//! Resources from a file (`tollgate edge --resources FILE`) instead of a control plane: read
//! and validated whole at start, and again on SIGHUP, when a file with any error leaves the
//! resources served as they were.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tollgate_model::{FieldError, ValidResource};

use crate::Edge;

/// Why a resources file cannot be used.
#[derive(Debug)]
pub enum ResourcesFileError {
    /// The file could not be read.
    Unreadable(PathBuf, std::io::Error),
    /// Every problem found, each naming the resource and the field.
    Invalid(PathBuf, Vec<FieldError>),
}

impl std::fmt::Display for ResourcesFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResourcesFileError::Unreadable(p, e) => write!(f, "cannot read {}: {e}", p.display()),
            ResourcesFileError::Invalid(p, errs) => {
                write!(f, "{}:", p.display())?;
                for e in errs {
                    write!(f, "\n  {e}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ResourcesFileError {}

/// The resources in `path`, every one valid, or every problem.
pub fn load_resources(path: &Path) -> Result<Vec<ValidResource>, ResourcesFileError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ResourcesFileError::Unreadable(path.to_owned(), e))?;
    tollgate_model::parse_resources(&text)
        .map_err(|errs| ResourcesFileError::Invalid(path.to_owned(), errs))
}

/// Re-reads `path` on every SIGHUP, for as long as the runtime runs.
pub fn reload_on_hangup(edge: Arc<Edge>, path: PathBuf) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            match load_resources(&path) {
                Ok(r) if !edge.has_geoip() && r.iter().any(|r| r.access.needs_country()) => {
                    eprintln!(
                        "tollgate edge: reload refused, keeping the old resources: a resource \
                         enforces country_acl and this edge has no --geoip-db"
                    )
                }
                Ok(r) => {
                    let n = r.len();
                    edge.replace_routes(r);
                    eprintln!("tollgate edge: reloaded {} ({n} resources)", path.display());
                }
                Err(e) => {
                    eprintln!("tollgate edge: reload refused, keeping the old resources: {e}")
                }
            }
        }
    });
    Ok(())
}
