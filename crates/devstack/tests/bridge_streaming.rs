//! The bridge streams bodies both ways: a download's first bytes reach the client before the backend has
//! sent the rest, and an upload's first bytes reach the backend before the client has sent the rest.
//! (Against a scripted backend; no emulators needed.)
#![allow(unsafe_code)] // child processes and signals of the stack under test (libc)

use std::time::Duration;

use axum::body::{Body, Bytes};
use devstack::bridge::Bridge;
use futures::StreamExt as _;
use tokio::sync::{mpsc, oneshot};

fn chunk_stream(rx: mpsc::Receiver<Bytes>) -> Body {
    Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_stream_through_without_buffering() {
    // Backend: GET streams chunks as the test releases them; PUT reports its first chunk, then drains.
    let (down_tx, down_rx) = mpsc::channel::<Bytes>(4);
    let down_rx = std::sync::Arc::new(std::sync::Mutex::new(Some(down_rx)));
    let (first_up_tx, first_up_rx) = oneshot::channel::<Bytes>();
    let first_up_tx = std::sync::Arc::new(std::sync::Mutex::new(Some(first_up_tx)));
    let backend_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend_addr = backend_listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/download/storage/v1/b/b/o/big",
        axum::routing::get(move || {
            let rx = down_rx.lock().unwrap().take().unwrap();
            async move { chunk_stream(rx) }
        })
        .put(move |body: Body| {
            let tx = first_up_tx.lock().unwrap().take().unwrap();
            async move {
                let mut stream = body.into_data_stream();
                let first = stream.next().await.unwrap().unwrap();
                tx.send(first).unwrap();
                let mut total = 0;
                while let Some(chunk) = stream.next().await {
                    total += chunk.unwrap().len();
                }
                format!("{total}")
            }
        }),
    );
    tokio::spawn(async move { axum::serve(backend_listener, app).await.unwrap() });

    let root = std::env::temp_dir().join(format!("devstack-bridge-stream-{}", std::process::id()));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let bridge = Bridge::start(listener, backend_addr, root.clone()).unwrap();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("{}/download/storage/v1/b/b/o/big", bridge.url());

    // Download: the first chunk arrives while the backend still holds the rest.
    down_tx
        .send(Bytes::from_static(b"first-chunk"))
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), async {
        let mut body = client.get(&url).send().await.unwrap().bytes_stream();
        let first = body.next().await;
        (first, body)
    });
    let (first, mut body) = first.await.expect("download streamed, not buffered");
    assert_eq!(first.unwrap().unwrap().as_ref(), b"first-chunk");
    down_tx.send(Bytes::from(vec![7u8; 1 << 20])).await.unwrap();
    drop(down_tx);
    let mut rest = 0;
    while let Some(chunk) = body.next().await {
        rest += chunk.unwrap().len();
    }
    assert_eq!(rest, 1 << 20);

    // Upload: the backend sees the first chunk before the client sends the second.
    let (up_tx, up_rx) = mpsc::channel::<Bytes>(4);
    up_tx
        .send(Bytes::from_static(b"upload-start"))
        .await
        .unwrap();
    let put = tokio::spawn(
        client
            .put(&url)
            .body(reqwest::Body::wrap_stream(futures::stream::unfold(
                up_rx,
                |mut rx| async move { rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx)) },
            )))
            .send(),
    );
    let first = tokio::time::timeout(Duration::from_secs(5), first_up_rx)
        .await
        .expect("upload streamed");
    assert_eq!(first.unwrap().as_ref(), b"upload-start");
    up_tx.send(Bytes::from(vec![1u8; 1000])).await.unwrap();
    drop(up_tx);
    let resp = put.await.unwrap().unwrap();
    assert_eq!(resp.text().await.unwrap(), "1000");

    bridge.shutdown().await;
    std::fs::remove_dir_all(&root).unwrap();
}
