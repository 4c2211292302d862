//! The two monitoring requests the harness needs (`/healthz`, `/jsz`): a
//! plain HTTP/1.0 GET on loopback, no client library needed.

use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// GETs `path` from 127.0.0.1:`port`; returns the status code and the body.
pub async fn get(port: u16, path: &str) -> anyhow::Result<(u16, String)> {
    get_at("127.0.0.1", port, path).await
}

/// GETs `path` from `host`:`port`; returns the status code and the body.
pub async fn get_at(host: &str, port: u16, path: &str) -> anyhow::Result<(u16, String)> {
    let exchange = async {
        let mut stream = TcpStream::connect((host, port)).await?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        anyhow::Ok(raw)
    };
    let raw = tokio::time::timeout(Duration::from_secs(3), exchange)
        .await
        .with_context(|| format!("GET {path} on port {port} timed out"))??;
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> anyhow::Result<(u16, String)> {
    let text = String::from_utf8_lossy(raw);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        bail!("malformed HTTP response");
    };
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("malformed HTTP status line")?;
    Ok((status, body.to_string()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_a_response() {
        let raw = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n\r\n{\"status\":\"unavailable\"}";
        let (status, body) = super::parse_response(raw).unwrap();
        assert_eq!(status, 503);
        assert_eq!(body, "{\"status\":\"unavailable\"}");
    }
}
