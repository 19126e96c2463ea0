//! Request/reply with `zocket::Req` and `zocket::Rep`.
//!
//! ```text
//! cargo run --example reqrep                                      # both in one process, then exits
//! cargo run --example reqrep -- rep tcp://127.0.0.1:5557          # terminal 1: serve
//! cargo run --example reqrep -- req tcp://127.0.0.1:5557 hello    # terminal 2: one request
//! ```
//!
//! The replier answers each request with its text upper-cased and numbered. `Req::request`
//! borrows the socket until the reply arrives, and the `Request` a `Rep` receives borrows
//! the `Rep` until it is answered, so neither side can get out of step.

use std::time::Duration;

use zocket::{Message, Options, Rep, Req};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => demo().await?,
        Some("rep") => {
            let endpoint = args.get(1).map_or("tcp://127.0.0.1:5557", String::as_str);
            let rep = Rep::new();
            let bound = rep.bind(endpoint).await?;
            println!("serving on {bound} (Ctrl-C to stop)");
            tokio::select! {
                served = serve(rep, None) => { served?; }
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Some("req") => {
            let endpoint = args.get(1).map_or("tcp://127.0.0.1:5557", String::as_str);
            let text = args.get(2).cloned().unwrap_or_else(|| "hello".to_string());
            // Without a replier the request would wait forever; give up after 5 s instead.
            let options = Options::new().request_timeout(Some(Duration::from_secs(5)));
            let mut req = Req::with_options(options);
            req.connect(endpoint)?;
            println!("request {text:?} -> {endpoint}");
            match req.request(text).await {
                Ok(reply) => println!("reply   {:?}", show(&reply)),
                Err(zocket::Error::Timeout) => {
                    eprintln!("no reply within 5 s: is `reqrep -- rep {endpoint}` running?");
                    std::process::exit(1);
                }
                Err(e) => return Err(e.into()),
            }
            req.close().await;
        }
        Some(other) => {
            eprintln!(
                "unknown mode {other:?}; usage: reqrep [rep ENDPOINT | req ENDPOINT MESSAGE]"
            );
            std::process::exit(2);
        }
    }
    Ok(())
}

/// A replier and a requester in one process.
async fn demo() -> zocket::Result<()> {
    let rep = Rep::new();
    let endpoint = rep.bind("tcp://127.0.0.1:0").await?.to_string();
    println!("replier bound to {endpoint}");

    const REQUESTS: [&str; 4] = ["hello", "how are you?", "zocket", "bye"];
    let server = tokio::spawn(serve(rep, Some(REQUESTS.len())));

    let options = Options::new().request_timeout(Some(Duration::from_secs(5)));
    let mut req = Req::with_options(options);
    req.connect(&endpoint)?;
    for text in REQUESTS {
        let reply = req.request(text).await?;
        println!("request {text:?} -> reply {:?}", show(&reply));
    }
    req.close().await;
    server.await.expect("replier task panicked")?;
    Ok(())
}

/// Answers requests (all of them, or `limit`) with their text upper-cased and numbered.
async fn serve(mut rep: Rep, limit: Option<usize>) -> zocket::Result<()> {
    let mut count = 0;
    while limit.is_none_or(|limit| count < limit) {
        let request = rep.recv().await?;
        count += 1;
        let text = show(request.message());
        let answer = format!("#{count}: {}", text.to_uppercase());
        println!("  replier got {text:?}, answers {answer:?}");
        request.reply(answer).await?;
    }
    rep.close().await;
    Ok(())
}

/// A message's frames as text, separated by ` | `.
fn show(msg: &Message) -> String {
    msg.frames()
        .iter()
        .map(|frame| String::from_utf8_lossy(frame))
        .collect::<Vec<_>>()
        .join(" | ")
}
