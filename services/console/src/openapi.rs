//! The OpenAPI 3.1 spec of the console API, generated from the handlers' annotations and served at
//! `/api/openapi.json` (the UI and the CLI use nothing else).

use super::ConsoleApp;
use axum::Router;
use axum::response::Json;
use axum::routing::get;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "segcast console API",
        description = "Register LINE channels, contents and BigQuery segments; reserve, approve, control and watch campaigns."
    ),
    paths(
        super::users::sign_in, super::users::sign_out, super::users::me, super::users::list, super::users::set_role,
        super::channels::list, super::channels::one, super::channels::create, super::channels::update,
        super::contents::list, super::contents::one, super::contents::create, super::contents::update,
        super::contents::validate, super::contents::versions,
        super::segments::list, super::segments::one, super::segments::create, super::segments::update,
        super::segments::preview,
        super::campaigns::list, super::campaigns::one, super::campaigns::create, super::campaigns::update,
        super::campaigns::schedule, super::campaigns::approve, super::campaigns::pause, super::campaigns::resume,
        super::campaigns::cancel, super::campaigns::duplicate, super::campaigns::test_send,
        super::results::progress, super::results::results, super::results::timeline, super::results::failures_csv,
        super::results::audit_log,
    ),
    tags(
        (name = "users", description = "Sign-in and roles"),
        (name = "channels", description = "LINE channels"),
        (name = "contents", description = "Messages"),
        (name = "segments", description = "BigQuery segments"),
        (name = "campaigns", description = "Campaigns and their commands"),
        (name = "results", description = "Progress, results, exports"),
        (name = "audit", description = "Who changed what"),
    )
)]
pub struct ApiDoc;

pub fn routes() -> Router<ConsoleApp> {
    Router::new().route(
        "/api/openapi.json",
        get(|| async { Json(ApiDoc::openapi()) }),
    )
}
