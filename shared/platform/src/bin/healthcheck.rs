//! `healthcheck [URL]`: the container probe. GETs `URL` (default
//! `http://127.0.0.1:$ADMIN_PORT/health/ready`: health is served on the admin
//! port only) and exits 0 on a 2xx answer, 1
//! otherwise, with one line on stderr saying why.
//!
//! The runtime image has no shell, curl or wget (fewer tools, less to patch
//! and to exploit), so the compose healthchecks run this instead: plain
//! HTTP/1.1 over the standard library, a few hundred kilobytes, bounded by
//! short timeouts so a hung service fails the check rather than hanging it.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(2);

fn main() -> ExitCode {
    let url = match std::env::args().nth(1) {
        Some(url) => url,
        None => match std::env::var("ADMIN_PORT") {
            Ok(port) => format!("http://127.0.0.1:{port}{}", platform::health::READY_PATH),
            Err(_) => {
                eprintln!("healthcheck: give a URL, or set ADMIN_PORT");
                return ExitCode::from(2);
            }
        },
    };
    match probe(&url) {
        Ok(status) if (200..300).contains(&status) => ExitCode::SUCCESS,
        Ok(status) => {
            eprintln!("healthcheck: {url} answered {status}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("healthcheck: {url}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The status code `url` answers with.
fn probe(url: &str) -> Result<u16, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http:// URLs are supported")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let address = authority
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {authority} (host:port): {e}"))?
        .next()
        .ok_or_else(|| format!("{authority} resolves to nothing"))?;
    let mut stream = TcpStream::connect_timeout(&address, TIMEOUT).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(TIMEOUT)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    // The status line is all we need: "HTTP/1.1 200 OK".
    let mut head = [0u8; 64];
    let mut read = 0;
    while read < 12 {
        match stream.read(&mut head[read..]) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) => return Err(e.to_string()),
        }
    }
    let line = String::from_utf8_lossy(&head[..read]);
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {line:?}"))
}
