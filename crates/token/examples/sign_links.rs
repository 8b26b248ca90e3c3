//! Handing out signed links from a Rust service: `cargo run -p tollgate-token --example
//! sign_links -- /videos/my\ film.mp4 [CLIENT_IP]` with the resource's key in `TOLLGATE_KEY`.
//!
//! The clock is read here, in the service: the library never reads it, so its output depends on
//! its arguments alone.

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use tollgate_token::sign::expiry;
use tollgate_token::{signed_url, Key};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let key = Key::new(&std::env::var("TOLLGATE_KEY").unwrap_or_else(|_| "secret_key".into()))?;
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "/videos/my film.mp4".into());
    // Type-0 resources bind the link to the viewer's address, as your web server sees it.
    let ip: Option<IpAddr> = args.next().map(|a| a.parse()).transpose()?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;

    // Valid for an hour from now.
    println!(
        "{}",
        signed_url("https://cdn.example.com", &key, &path, now + 3600, ip)?
    );
    // Valid for at least an hour, the same link for every view within the same 10 minutes.
    let windowed = expiry(now, 3600, 600);
    println!(
        "{}",
        signed_url("https://cdn.example.com", &key, &path, windowed, ip)?
    );
    Ok(())
}
