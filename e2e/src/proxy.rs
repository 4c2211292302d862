//! A TCP proxy between devices and a gateway that loses acknowledgements:
//! every `every`-th chunk the gateway sends (counted over all connections
//! of the proxy) is not forwarded and the connection is cut instead — what
//! a device sees when its ack is lost after the frame was stored (a radio
//! link that drops, a NAT that times out). Real firmware then sends its
//! pending records again, re-packed or re-encoded.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A running proxy; it stops when dropped.
pub struct LossyProxy {
    pub addr: SocketAddr,
    lost: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl LossyProxy {
    /// Listens on a free loopback port and forwards to `target`.
    pub async fn start(target: SocketAddr, every: usize) -> std::io::Result<LossyProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let chunks = Arc::new(AtomicUsize::new(0));
        let lost = Arc::new(AtomicUsize::new(0));
        let (c, l) = (chunks.clone(), lost.clone());
        let task = tokio::spawn(async move {
            while let Ok((device, _)) = listener.accept().await {
                tokio::spawn(relay(device, target, every.max(1), c.clone(), l.clone()));
            }
        });
        Ok(LossyProxy { addr, lost, task })
    }

    /// Answers lost so far.
    pub fn lost(&self) -> usize {
        self.lost.load(Ordering::Relaxed)
    }
}

impl Drop for LossyProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(
    device: TcpStream,
    target: SocketAddr,
    every: usize,
    chunks: Arc<AtomicUsize>,
    lost: Arc<AtomicUsize>,
) {
    let Ok(gateway) = TcpStream::connect(target).await else {
        return;
    };
    let (mut from_device, mut to_device) = device.into_split();
    let (mut from_gateway, mut to_gateway) = gateway.into_split();
    let up = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut from_device, &mut to_gateway).await;
    });
    let mut buf = vec![0u8; 8192];
    loop {
        match from_gateway.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if (chunks.fetch_add(1, Ordering::Relaxed) + 1).is_multiple_of(every) {
                    lost.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                if to_device.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    up.abort();
}
