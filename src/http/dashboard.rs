//! The dashboard: a page (from `dashboard/` in the repository, built in), a login form that
//! sets a cookie holding the token (`Secure` over HTTPS), the cluster's state as JSON, and
//! the same state pushed every second as server-sent events. Every data route asks for the
//! dashboard's own token (the cookie, or `Authorization: Bearer TOKEN`), which grants
//! reading and nothing else: nothing here runs code or changes the cluster.

use std::sync::Weak;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;

use super::snapshot::snapshot;
use crate::runtime::global::Runtime;
use crate::transport::credentials::token_matches;

const INDEX: &str = include_str!("../../dashboard/index.html");
const LOGIN: &str = include_str!("../../dashboard/login.html");
const SCRIPT: &str = include_str!("../../dashboard/app.js");
const STYLE: &str = include_str!("../../dashboard/style.css");

/// The cookie that carries the token.
const COOKIE: &str = "mobula_token";

/// How often the live page gets the state.
const EVERY: Duration = Duration::from_secs(1);

#[derive(Clone)]
struct Dashboard {
    node: Weak<Runtime>,
    token: String,
    /// Served over HTTPS: the cookie is marked `Secure`.
    secure: bool,
}

pub(super) fn routes(
    cfg: &mut web::ServiceConfig,
    node: Weak<Runtime>,
    token: String,
    secure: bool,
) {
    cfg.app_data(web::Data::new(Dashboard {
        node,
        token,
        secure,
    }))
    .route("/", web::get().to(index))
    .route("/login", web::post().to(login))
    .route("/logout", web::post().to(logout))
    .route(
        "/app.js",
        web::get().to(|| async { file(SCRIPT, "text/javascript") }),
    )
    .route(
        "/style.css",
        web::get().to(|| async { file(STYLE, "text/css") }),
    )
    .route("/api/state", web::get().to(api_state))
    .route("/events", web::get().to(events));
}

fn file(body: &'static str, kind: &str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(format!("{kind}; charset=utf-8"))
        .body(body)
}

/// The value of cookie `name` in a `Cookie` header.
fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether the request carries the token, in the cookie or as a bearer token.
fn authorized(req: &HttpRequest, token: &str) -> bool {
    let text = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    let from_cookie = text(header::COOKIE).and_then(|c| cookie(c, COOKIE));
    let from_header = text(header::AUTHORIZATION).and_then(|a| a.strip_prefix("Bearer "));
    [from_cookie, from_header]
        .into_iter()
        .flatten()
        .any(|given| token_matches(token, given.trim()))
}

fn refused() -> HttpResponse {
    HttpResponse::Unauthorized()
        .content_type("text/plain; charset=utf-8")
        .body("the dashboard needs its token (dashboard-token in the cluster directory): log in at / or send Authorization: Bearer TOKEN\n")
}

async fn index(req: HttpRequest, d: web::Data<Dashboard>) -> HttpResponse {
    if authorized(&req, &d.token) {
        file(INDEX, "text/html")
    } else {
        file(LOGIN, "text/html")
    }
}

#[derive(serde::Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(form: web::Form<LoginForm>, d: web::Data<Dashboard>) -> HttpResponse {
    if !token_matches(&d.token, form.token.trim()) {
        return HttpResponse::Unauthorized()
            .content_type("text/html; charset=utf-8")
            .body(LOGIN.replace("<!--error-->", "<p class=\"error\">Wrong token.</p>"));
    }
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/"))
        .insert_header((
            header::SET_COOKIE,
            cookie_value(form.token.trim(), d.secure, false),
        ))
        .finish()
}

/// The `Set-Cookie` value that keeps the token (or, `clear`, forgets it).
fn cookie_value(token: &str, secure: bool, clear: bool) -> String {
    let mut value = format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict");
    if secure {
        value += "; Secure";
    }
    if clear {
        value += "; Max-Age=0";
    }
    value
}

async fn logout(d: web::Data<Dashboard>) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/"))
        .insert_header((header::SET_COOKIE, cookie_value("", d.secure, true)))
        .finish()
}

/// The state now, off the server's thread (the head asks every node).
async fn state_json(node: Weak<Runtime>) -> Result<String, String> {
    let made = web::block(move || {
        let rt = node.upgrade().ok_or("the node has stopped")?;
        snapshot(&rt)
            .map(|json| json.to_string())
            .map_err(|e| e.to_string())
    })
    .await;
    made.map_err(|e| e.to_string())?
}

async fn api_state(req: HttpRequest, d: web::Data<Dashboard>) -> HttpResponse {
    if !authorized(&req, &d.token) {
        return refused();
    }
    match state_json(d.node.clone()).await {
        Ok(json) => HttpResponse::Ok()
            .content_type("application/json")
            .body(json),
        Err(why) => HttpResponse::ServiceUnavailable().body(why),
    }
}

async fn events(req: HttpRequest, d: web::Data<Dashboard>) -> HttpResponse {
    if !authorized(&req, &d.token) {
        return refused();
    }
    let node = d.node.clone();
    let stream = futures::stream::unfold(true, move |first| {
        let node = node.clone();
        async move {
            if !first {
                actix_rt::time::sleep(EVERY).await;
            }
            let event = match state_json(node).await {
                Ok(json) => format!("event: state\ndata: {json}\n\n"),
                Err(why) => format!("event: problem\ndata: {}\n\n", why.replace('\n', " ")),
            };
            Some((Ok::<_, actix_web::Error>(Bytes::from(event)), false))
        }
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .streaming(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_secure_over_https_and_cleared_on_logout() {
        let plain = cookie_value("t", false, false);
        assert_eq!(plain, "mobula_token=t; Path=/; HttpOnly; SameSite=Strict");
        assert!(cookie_value("t", true, false).ends_with("; Secure"));
        assert!(cookie_value("", true, true).ends_with("; Secure; Max-Age=0"));
    }

    #[test]
    fn the_token_cookie_is_found_among_others() {
        assert_eq!(cookie("a=1; mobula_token=xyz; b=2", COOKIE), Some("xyz"));
        assert_eq!(cookie("mobula_token=", COOKIE), Some(""));
        assert_eq!(cookie("a=1", COOKIE), None);
        assert_eq!(cookie("", COOKIE), None);
    }
}
