//! Who may read the dashboard, `/metrics` and the JSON API: with a token,
//! whoever presents it — `Authorization: Bearer TOKEN` (Prometheus, curl),
//! HTTP Basic with the token as the password (a browser's prompt), or once
//! `?token=TOKEN` on any page, which sets a cookie and redirects to the page
//! without it. `/health` stays open for probes: it says nothing but `ok`.
//! The cookie holds a key derived from the token, never the token.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use accel_proto::auth::{Secret, ct_eq};
use accel_proto::http_auth::authorizes;

/// The dashboard's credential: the token, and the cookie it yields.
#[derive(Clone, Debug)]
pub(super) struct Guard {
    token: Secret,
    /// Named after the token too: cookies ignore ports, and two schedulers
    /// on one host must not overwrite each other's.
    cookie_name: String,
    cookie: String,
}

impl Guard {
    pub(super) fn new(token: Secret) -> Guard {
        let tag = token.job_key(u64::MAX);
        let cookie: String = tag.bytes().iter().map(|b| format!("{b:02x}")).collect();
        let cookie_name = format!("accel_dashboard_{}", &cookie[..8]);
        Guard {
            token,
            cookie_name,
            cookie,
        }
    }

    fn token_in_headers(&self, headers: &HeaderMap) -> bool {
        let auth = headers
            .get_all(header::AUTHORIZATION)
            .iter()
            .filter_map(|v| v.to_str().ok());
        let cookies = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok());
        auth.into_iter().any(|v| authorizes(&self.token, v))
            || cookies
                .flat_map(|v| v.split(';'))
                .filter_map(|c| {
                    c.trim()
                        .strip_prefix(self.cookie_name.as_str())?
                        .strip_prefix('=')
                })
                .any(|c| ct_eq(c.as_bytes(), self.cookie.as_bytes()))
    }

    /// The token given as `?token=...`, and the query without it.
    fn token_in_query(&self, uri: &Uri) -> Option<String> {
        let query = uri.query()?;
        let mut found = false;
        let rest: Vec<&str> = query
            .split('&')
            .filter(|p| match p.strip_prefix("token=") {
                Some(t) => {
                    found |= self.token.matches(percent_decode(t).as_bytes());
                    false
                }
                None => true,
            })
            .collect();
        // One leading slash: `//host/...` would send the browser off-site.
        let path = format!("/{}", uri.path().trim_start_matches(['/', '\\']));
        found.then(|| match rest.is_empty() {
            true => path,
            false => format!("{path}?{}", rest.join("&")),
        })
    }
}

/// Lets a request through if it carries the token (or asks for `/health`).
pub(super) async fn check(State(guard): State<Guard>, req: Request, next: Next) -> Response {
    if req.uri().path() == "/health" || guard.token_in_headers(req.headers()) {
        return next.run(req).await;
    }
    if let Some(clean) = guard.token_in_query(req.uri()) {
        let mut r = Redirect::to(&clean).into_response();
        // Lax: the redirect after a link followed from elsewhere still
        // carries it (every route only reads).
        let cookie = format!(
            "{}={}; Path=/; HttpOnly; SameSite=Lax",
            guard.cookie_name, guard.cookie
        );
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            r.headers_mut().insert(header::SET_COOKIE, v);
        }
        return r;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(
            header::WWW_AUTHENTICATE,
            "Basic realm=\"accel dashboard\", charset=\"UTF-8\"",
        )],
        "this scheduler's dashboard needs its token: open /status?token=TOKEN, or send \
         `Authorization: Bearer TOKEN` (the clients' token, or --dashboard-token-file)\n",
    )
        .into_response()
}

/// `%XX` escapes decoded, invalid ones kept as they are. A `+` stays a `+`:
/// base64 tokens pasted into a link as they are still match.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    fn app() -> Router {
        let guard = Guard::new(Secret::from_bytes(b"s3cret/+=".to_vec()));
        Router::new()
            .route("/health", get(|| async { "ok" }))
            .route("/api/status", get(|| async { "status" }))
            .layer(axum::middleware::from_fn_with_state(guard, check))
    }

    async fn call(uri: &str, headers: &[(&str, &str)]) -> Response {
        let mut req = Request::builder().uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        app()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn only_requests_with_the_token_get_through() {
        assert_eq!(call("/health", &[]).await.status(), StatusCode::OK);
        let refused = call("/api/status", &[]).await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        assert!(refused.headers().contains_key(header::WWW_AUTHENTICATE));
        for wrong in ["Bearer s3cret", "Bearer ", "Basic !!!", "Basic czNjcmV0"] {
            let r = call("/api/status", &[("authorization", wrong)]).await;
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{wrong}");
        }
        let bearer = call("/api/status", &[("authorization", "Bearer s3cret/+=")]).await;
        assert_eq!(bearer.status(), StatusCode::OK);
        // "me:s3cret/+=" in base64.
        let basic = call(
            "/api/status",
            &[("authorization", "Basic bWU6czNjcmV0Lys9")],
        )
        .await;
        assert_eq!(basic.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn the_token_in_a_link_becomes_a_cookie() {
        let r = call("/api/status?a=1&token=s3cret%2F%2B%3D", &[]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(r.headers()[header::LOCATION], "/api/status?a=1");
        let set = r.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .to_string();
        assert!(!set.contains("s3cret"), "the cookie holds the token: {set}");
        let cookie = set.split(';').next().unwrap().to_string();
        let ok = call("/api/status", &[("cookie", &format!("x=1; {cookie}"))]).await;
        assert_eq!(ok.status(), StatusCode::OK);
        let name = cookie.split('=').next().unwrap().to_string();
        assert!(name.starts_with("accel_dashboard_"), "{name}");
        let forged = call("/api/status", &[("cookie", &format!("{name}=00"))]).await;
        assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
        // The redirect stays on this site.
        let r = call("//evil.example/x?token=s3cret%2F%2B%3D", &[]).await;
        assert_eq!(r.headers()[header::LOCATION], "/evil.example/x");
        let wrong = call("/api/status?token=guess", &[]).await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
        // Pasted as it is, unescaped.
        let raw = call("/api/status?token=s3cret/+=", &[]).await;
        assert_eq!(raw.status(), StatusCode::SEE_OTHER);
        assert_eq!(raw.headers()[header::LOCATION], "/api/status");
    }

    #[test]
    fn percent_escapes_decode() {
        assert_eq!(percent_decode("a%2Fb+c%zz%4"), "a/b+c%zz%4");
    }
}
