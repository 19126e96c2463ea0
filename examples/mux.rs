//! Many streams over one TCP connection with `zocket::mux`.
//!
//! ```text
//! cargo run --example mux                          # server and client in one process
//! cargo run --example mux -- server 127.0.0.1:7000 # or one side per terminal
//! cargo run --example mux -- client 127.0.0.1:7000
//! ```
//!
//! The client opens one stream that uploads 64 MiB and, at the same time, three small
//! request streams. The server answers each stream on its own; the small requests are
//! answered while the bulk upload is still going, because streams take turns on the wire.

use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use zocket::mux::{Session, Stream};

const BULK: usize = 64 << 20;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?.to_string();
            println!("server listening on {addr}");
            let server = tokio::spawn(serve(listener));
            client(&addr).await?;
            server.abort();
        }
        Some("server") => {
            let addr = args.get(1).map_or("127.0.0.1:7000", String::as_str);
            let listener = TcpListener::bind(addr).await?;
            println!("server listening on {addr}");
            serve(listener).await?;
        }
        Some("client") => client(args.get(1).map_or("127.0.0.1:7000", String::as_str)).await?,
        Some(other) => {
            eprintln!("unknown mode {other:?}: expected `server ADDR` or `client ADDR`");
            std::process::exit(2);
        }
    }
    Ok(())
}

/// Accepts connections; on each, answers every stream: a stream that starts with "GET "
/// gets a short reply, any other is counted to its end.
async fn serve(listener: TcpListener) -> std::io::Result<()> {
    loop {
        let (tcp, peer) = listener.accept().await?;
        tcp.set_nodelay(true)?;
        println!("server: connection from {peer}");
        let session = Session::server(tcp);
        tokio::spawn(async move {
            while let Ok(stream) = session.accept().await {
                tokio::spawn(answer(stream));
            }
        });
    }
}

async fn answer(mut stream: Stream) -> std::io::Result<()> {
    let mut head = [0u8; 4];
    stream.read_exact(&mut head).await?;
    if &head == b"GET " {
        let mut what = String::new();
        stream.read_to_string(&mut what).await?;
        let reply = format!("here is {what} (stream {})", stream.id());
        stream.write_all(reply.as_bytes()).await?;
    } else {
        let mut total = head.len() as u64;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            total += n as u64;
        }
        stream
            .write_all(format!("received {total} bytes").as_bytes())
            .await?;
    }
    stream.shutdown().await
}

async fn request(session: Session, what: &'static str, started: Instant) -> std::io::Result<()> {
    let mut stream = session.open().await?;
    stream.write_all(format!("GET {what}").as_bytes()).await?;
    stream.shutdown().await?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await?;
    println!(
        "client: {reply:<40} after {:>6.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}

async fn client(addr: &str) -> Result<(), Box<dyn std::error::Error>> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let session = Session::client(tcp);
    let started = Instant::now();

    // The small requests start once the upload is under way.
    let (under_way, upload_started) = tokio::sync::oneshot::channel();
    let bulk = {
        let session = session.clone();
        tokio::spawn(async move {
            let mut stream = session.open().await?;
            let block = vec![0x5Au8; 1 << 20];
            let mut under_way = Some(under_way);
            for i in 0..BULK / block.len() {
                stream.write_all(&block).await?;
                if i == 3 {
                    println!("client: bulk upload under way ({} MiB written)", i + 1);
                    under_way.take().map(|tx| tx.send(()));
                }
            }
            stream.shutdown().await?;
            let mut reply = String::new();
            stream.read_to_string(&mut reply).await?;
            let secs = started.elapsed().as_secs_f64();
            println!(
                "client: bulk upload: {reply} in {:.1} ms ({:.0} MB/s)",
                secs * 1e3,
                BULK as f64 / secs / 1e6
            );
            Ok::<_, std::io::Error>(())
        })
    };
    let _ = upload_started.await;
    let small: Vec<_> = ["/status", "/config", "/metrics"]
        .into_iter()
        .map(|what| tokio::spawn(request(session.clone(), what, started)))
        .collect();
    for task in small {
        task.await??;
    }
    bulk.await??;
    session.close().await;
    println!("client: 4 streams, 1 TCP connection, done");
    Ok(())
}
