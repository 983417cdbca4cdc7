//! Serving a real model over HTTP: the logistic regression of `examples/tune.rs`, trained
//! here, behind a preprocessing deployment (it standardizes raw features with the training
//! set's statistics) and a batched model deployment, composed by an ingress that takes JSON.
//!
//!     cargo run --release --example serve              # trains, serves, asks itself, stops
//!     cargo run --release --example serve -- --serve   # ... and serves until Ctrl-C
//!     curl -d '{"features": [0.3, -1.2, 0.8, 0.1, 0.5, -0.4, 1.1, 0.2, -0.9, 0.6,
//!                            0.0, 0.7, -0.3, 0.4, 1.0, -0.2, 0.9, -1.0, 0.3, 0.5]}' \
//!          http://127.0.0.1:8000/classify

#[path = "shared/logistic.rs"]
mod logistic;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use logistic::{FEATURES, accuracy, dataset, epoch, predict};
use mobula::prelude::*;
use mobula::serve::{self, HttpOptions, Json, RunOptions};
use serde::{Deserialize, Serialize};

/// The training set's mean and standard deviation per feature.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stats {
    mean: Vec<f64>,
    std: Vec<f64>,
}

/// Checks and standardizes raw features.
#[mobula::deployment(num_replicas = 2, num_cpus = 0.25)]
struct Preprocess {
    stats: Stats,
}

#[mobula::deployment]
impl Preprocess {
    fn new(stats: Stats) -> Self {
        Preprocess { stats }
    }

    fn transform(&self, raw: Vec<f64>) -> Result<Vec<f64>, String> {
        if raw.len() != FEATURES {
            return Err(format!("expected {FEATURES} features, got {}", raw.len()));
        }
        Ok(raw
            .iter()
            .zip(self.stats.mean.iter().zip(&self.stats.std))
            .map(|(x, (m, s))| (x - m) / s)
            .collect())
    }
}

/// The trained model, scoring requests in batches.
#[mobula::deployment(num_cpus = 0.25, max_ongoing_requests = 64)]
struct Model {
    weights: Vec<f64>,
}

#[mobula::deployment]
impl Model {
    fn new(weights: Vec<f64>) -> Self {
        Model { weights }
    }

    #[batch(max_batch_size = 16, batch_wait_timeout_ms = 5)]
    fn probability(&self, batch: Vec<Vec<f64>>) -> Vec<f64> {
        batch.iter().map(|x| predict(&self.weights, x)).collect()
    }
}

#[derive(Debug, Deserialize)]
struct Query {
    features: Vec<f64>,
}

#[derive(Debug, Serialize)]
struct Answer {
    class: u8,
    probability: f64,
}

/// Takes JSON, standardizes it, scores it.
#[mobula::deployment(num_cpus = 0.25, max_ongoing_requests = 64)]
struct Classifier {
    preprocess: PreprocessHandle,
    model: ModelHandle,
}

#[mobula::deployment]
impl Classifier {
    fn new(preprocess: PreprocessHandle, model: ModelHandle) -> Self {
        Classifier { preprocess, model }
    }

    #[http]
    async fn classify(&self, query: Json<Query>) -> Result<Json<Answer>, GetError> {
        // The standardized features go to the model as a ref, without waiting for them here.
        let features = self.preprocess.transform(query.0.features);
        let probability = self.model.probability(features).await?;
        Ok(Json(Answer {
            class: u8::from(probability >= 0.5),
            probability: (probability * 1000.0).round() / 1000.0,
        }))
    }
}

fn train() -> (Vec<f64>, Stats, f64) {
    let train = dataset(4000, 1);
    let validation = dataset(1000, 2);
    let n = train.len() as f64;
    let mean: Vec<f64> = (0..FEATURES)
        .map(|j| train.iter().map(|(x, _)| x[j]).sum::<f64>() / n)
        .collect();
    let std: Vec<f64> = (0..FEATURES)
        .map(|j| {
            let var = train
                .iter()
                .map(|(x, _)| (x[j] - mean[j]).powi(2))
                .sum::<f64>()
                / n;
            var.sqrt().max(1e-9)
        })
        .collect();
    let scale = |data: &[logistic::Point]| -> Vec<logistic::Point> {
        data.iter()
            .map(|(x, y)| {
                let mut z = *x;
                for j in 0..FEATURES {
                    z[j] = (x[j] - mean[j]) / std[j];
                }
                (z, *y)
            })
            .collect()
    };
    let (train, validation) = (scale(&train), scale(&validation));
    let mut w = vec![0.0; FEATURES + 1];
    for _ in 0..20 {
        epoch(&mut w, &train, 0.01, 1e-4);
    }
    let acc = accuracy(&w, &validation);
    (w, Stats { mean, std }, acc)
}

/// One POST over loopback, as curl would send it; returns the status line's code and body.
fn post(address: SocketAddr, path: &str, body: &str) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect(address)?;
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    let status = reply
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = reply.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    Ok((status, body))
}

fn main() -> anyhow::Result<()> {
    let serve_forever = std::env::args().any(|a| a == "--serve");
    let _mobula = mobula::init(Config::default())?;

    let (weights, stats, acc) = train();
    println!("trained: validation accuracy {acc:.3}");

    let kept = stats.clone();
    let app = Classifier::bind(Preprocess::bind(stats), Model::bind(weights.clone()));
    let started = std::time::Instant::now();
    let classifier = serve::run(
        app,
        RunOptions::default()
            .name("classifier")
            .route_prefix("/classify")
            .http(HttpOptions::default()),
    )?;
    let address = serve::proxy_address().expect("the proxy runs");
    println!(
        "serving at http://{address}/classify (deployed in {:.1} ms)",
        started.elapsed().as_secs_f64() * 1e3
    );

    // Ask over HTTP, as a client would: points of the validation set and a bad request.
    let points = dataset(8, 99);
    let mut agree = 0;
    for (x, _) in &points {
        let body = serde_json::json!({ "features": x.to_vec() }).to_string();
        let (status, answer) = post(address, "/classify", &body)?;
        println!("POST /classify -> {status} {answer}");
        let answer: serde_json::Value = serde_json::from_str(&answer)?;
        // The same model run here agrees with what was served.
        let z: Vec<f64> = (0..FEATURES)
            .map(|j| (x[j] - kept.mean[j]) / kept.std[j])
            .collect();
        let here = predict(&weights, &z);
        let served = answer["probability"].as_f64().unwrap_or(f64::NAN);
        if (served - here).abs() < 1e-3 {
            agree += 1;
        }
    }
    let (status, answer) = post(address, "/classify", r#"{"features": [1, 2"#)?;
    println!("POST /classify (malformed) -> {status} {}", answer.trim());
    let (status, answer) = post(address, "/classify", r#"{"features": [1, 2]}"#)?;
    println!("POST /classify (2 features) -> {status} {}", answer.trim());
    anyhow::ensure!(
        agree == points.len(),
        "the served probabilities are the model's"
    );

    // Many at once: the model's batches fill.
    let threads: Vec<_> = (0..32)
        .map(|i| {
            let x = dataset(1, 1000 + i).remove(0).0;
            std::thread::spawn(move || {
                let body = serde_json::json!({ "features": x.to_vec() }).to_string();
                post(address, "/classify", &body).map(|(s, _)| s)
            })
        })
        .collect();
    for t in threads {
        anyhow::ensure!(t.join().expect("a client thread")? == 200);
    }
    let model = serve::get_deployment_handle::<ModelHandle>("classifier", "Model")?;
    let sizes = model.probability_batch_sizes().get()?;
    println!(
        "model batch sizes under 32 concurrent clients: largest {}",
        sizes.iter().max().unwrap_or(&0)
    );
    let _ = classifier;
    println!("\n{}", serve::status()?.render());

    if serve_forever {
        println!("serving until Ctrl-C");
        loop {
            std::thread::park();
        }
    }
    serve::shutdown();
    Ok(())
}
