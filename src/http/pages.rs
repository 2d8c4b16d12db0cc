//! The player page and its libraries ([`crate::player`]).

use bytes::Bytes;
use hyper::{
    Response, StatusCode,
    header::{self, HeaderValue},
};

use super::*;

impl Origin {
    /// The player page ([`crate::player`]), or the redirect to it. Never token-checked: it holds no
    /// media; what it loads is checked.
    pub(super) fn player_page(
        &self,
        page: &crate::player::PageRequest,
        is_head: bool,
    ) -> Response<ChunksBody> {
        let mut resp = match page {
            crate::player::PageRequest::Redirect(to) => {
                let mut r = Response::new(ChunksBody::empty());
                *r.status_mut() = StatusCode::MOVED_PERMANENTLY;
                if let Ok(v) = HeaderValue::from_str(to) {
                    r.headers_mut().insert(header::LOCATION, v);
                }
                r
            }
            crate::player::PageRequest::Page => {
                let mut r = Response::new(ChunksBody::new([Bytes::from_static(
                    crate::player::PAGE_HTML.as_bytes(),
                )]));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                );
                r
            }
        };
        resp.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(cache::PLAYER),
        );
        if is_head {
            *resp.body_mut() = ChunksBody::empty();
        }
        resp
    }

    /// A player library at `/player/{file}`: 200, 404 (no such file) or 503 (not installed).
    pub(super) fn player_asset(&self, file: &str, is_head: bool) -> Response<ChunksBody> {
        if !self.config.player.enabled {
            return error_response(&OriginError::NotFound);
        }
        match self.player.get(file) {
            Ok(Some(bytes)) => reply_response(
                Reply {
                    status: StatusCode::OK,
                    content_type: "text/javascript; charset=utf-8",
                    cache_control: Caching::Fixed(cache::PLAYER),
                    body: ChunksBody::new([bytes]),
                },
                is_head,
            ),
            Ok(None) => error_response(&OriginError::NotFound),
            Err(why) => {
                let mut r = Response::new(ChunksBody::new([Bytes::from(format!("503 {why}\n"))]));
                *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                let h = r.headers_mut();
                h.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                h.insert(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static(cache::ERROR),
                );
                r
            }
        }
    }
}
