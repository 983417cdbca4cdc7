//! `GET /metrics`: the node's metrics and the process's user metrics, as Prometheus text.

use std::sync::Weak;

use actix_web::{HttpResponse, web};

use crate::runtime::global::Runtime;

pub(super) fn routes(cfg: &mut web::ServiceConfig, node: Weak<Runtime>) {
    cfg.app_data(web::Data::new(node))
        .route("/metrics", web::get().to(metrics));
}

async fn metrics(node: web::Data<Weak<Runtime>>) -> HttpResponse {
    match node.upgrade() {
        Some(rt) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(crate::metrics::exposition(&rt)),
        None => HttpResponse::ServiceUnavailable().body("the node has stopped\n"),
    }
}
