//! From requests to typed values, with every refusal an [`ApiError`]
//! instead of axum's plain-text rejections: query and path parameters, the
//! API key, the server's public URL, and the run → variable → time → style
//! [`Selection`] that every map-like endpoint starts with.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts, HeaderMap};
use finecast_render::Palette;

use super::state::AppState;
use crate::error::ApiError;
use crate::raster::Style;
use crate::store::{Run, StoreError, VarMeta};

/// Query parameters, decoded; `get` is case-sensitive (the JSON API), `get_ci`
/// case-insensitive (WMS, whose parameter names are case-insensitive).
#[derive(Default)]
pub struct Params(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map(|q| Params(q.0))
            .map_err(|e| ApiError::BadRequest(format!("query string: {}", e.body_text())))
    }
}

impl Params {
    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `key`, whatever the case of the parameter's name.
    pub fn get_ci(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// A non-empty value.
    pub fn nonempty(&self, key: &str) -> Option<&str> {
        self.get(key).map(str::trim).filter(|v| !v.is_empty())
    }

    /// A non-empty value parsed as `T`; 400 when it does not parse.
    pub fn parse<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>, ApiError> {
        self.nonempty(key)
            .map(|v| {
                v.parse::<T>().map_err(|_| {
                    ApiError::BadRequest(format!(
                        "parameter '{key}': '{}' is not valid",
                        crate::ids::truncate(v, 40)
                    ))
                })
            })
            .transpose()
    }
}

/// Path parameters, with rejections as [`ApiError`].
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e| ApiError::BadRequest(e.body_text()))
    }
}

/// Write endpoints need one of the configured API keys (when there are any).
pub fn require_key(app: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if app.config.api_keys.is_empty() {
        return Ok(());
    }
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim);
    let Some(given) = given else {
        return Err(ApiError::Unauthorized);
    };
    // Compare in time independent of where the strings differ.
    let matches = |key: &str| {
        key.len() == given.len()
            && key
                .bytes()
                .zip(given.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    };
    if app.config.api_keys.iter().any(|k| matches(k)) {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

/// `http://host:port` of this server as the client addressed it, for links
/// that must be absolute (WMS capabilities, TileJSON).
pub fn base_url(app: &AppState, headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c))
        })
        .map(str::to_string)
        .unwrap_or_else(|| app.config.bind.to_string());
    let proto = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .filter(|p| *p == "https")
        .unwrap_or("http");
    format!("{proto}://{host}")
}

/// How a request names the variable of a [`Selection`].
#[derive(Debug, Clone, Copy)]
pub enum VarName<'a> {
    /// A name that must exist: a URL path segment, a WMS layer's variable.
    Exact(&'a str),
    /// An optional query parameter: absent or blank picks the run's first
    /// time-dependent variable.
    OrDefault(Option<&'a str>),
}

/// A variable of a run at one valid time, in a colour style: what every
/// map-like request shows (XYZ tile, TileJSON, map.png, legend, WMS layer).
pub struct Selection {
    /// The run.
    pub run: Arc<Run>,
    /// The variable, owned so renders can move it to their threads.
    pub var: VarMeta,
    /// Index into `var.times` (0 for static fields, and when no time is given).
    pub time_index: usize,
    /// Palette and colour range.
    pub style: Style,
}

/// Which step of [`Selection::resolve`] refused the request; WMS answers
/// each with its own exception code, the JSON API only needs the status.
#[derive(Debug)]
pub enum SelectionError<S> {
    /// The run has no such variable (404).
    Var(StoreError),
    /// The time is malformed (400) or not a valid time of the variable (404).
    Time(StoreError),
    /// The caller's style step refused the request.
    Style(S),
}

impl Selection {
    /// The prologue of every map-like request: the variable of `run`, its
    /// valid time (`None`: the first), then the style that `style` makes for
    /// the variable. Always in this order, so that of several bad parameters
    /// the same one is reported.
    pub fn resolve<S>(
        run: Arc<Run>,
        var: VarName<'_>,
        time: Option<&str>,
        style: impl FnOnce(&VarMeta) -> Result<Style, S>,
    ) -> Result<Selection, SelectionError<S>> {
        let var = match var {
            VarName::Exact(name) => run.var(name),
            VarName::OrDefault(name) => run.var_or_default(name),
        }
        .map_err(SelectionError::Var)?
        .clone();
        let time_index = run.time_index(&var, time).map_err(SelectionError::Time)?;
        let style = style(&var).map_err(SelectionError::Style)?;
        Ok(Selection {
            run,
            var,
            time_index,
            style,
        })
    }

    /// The JSON API's selection: run `run` (an id or `latest`), and the query
    /// parameters `time`, `palette` and `range`.
    pub fn from_query(
        app: &AppState,
        run: &str,
        var: VarName<'_>,
        params: &Params,
    ) -> Result<Selection, ApiError> {
        let run = app.run(run)?;
        Ok(Selection::resolve(run, var, params.get("time"), |v| {
            resolve_style(v, params.get("palette"), params.get("range"))
        })?)
    }
}

impl From<SelectionError<ApiError>> for ApiError {
    fn from(e: SelectionError<ApiError>) -> ApiError {
        match e {
            SelectionError::Var(e) | SelectionError::Time(e) => e.into(),
            SelectionError::Style(e) => e,
        }
    }
}

/// The palette and colour range for a request: named palette or the
/// variable's; `lo,hi`, `auto` (the data's range) or the variable's fixed
/// default range.
pub fn resolve_style(
    var: &VarMeta,
    palette: Option<&str>,
    range: Option<&str>,
) -> Result<Style, ApiError> {
    let palette = match palette
        .map(str::trim)
        .filter(|p| !p.is_empty() && *p != "default")
    {
        Some(name) => Palette::by_name(name).ok_or_else(|| {
            ApiError::Unprocessable(format!(
                "unknown palette '{}'; available: {}",
                crate::ids::truncate(name, 40),
                Palette::NAMES.join(", ")
            ))
        })?,
        None => Palette::by_name(&var.palette).unwrap_or_else(|| Palette::for_variable(&var.name)),
    };
    let range = match range
        .map(str::trim)
        .filter(|r| !r.is_empty() && *r != "default")
    {
        Some("auto") => var
            .value_range
            .map(|r| (r[0], r[1]))
            .filter(|r| r.0 < r.1)
            .unwrap_or((var.display_range[0], var.display_range[1])),
        Some(text) => parse_range(text)?,
        None => (var.display_range[0], var.display_range[1]),
    };
    Ok(Style::new(palette, range))
}

/// `lo,hi` with lo < hi, both finite.
pub fn parse_range(text: &str) -> Result<(f64, f64), ApiError> {
    let bad = || {
        ApiError::BadRequest(format!(
            "range '{}' must be LO,HI (numbers, LO < HI)",
            crate::ids::truncate(text, 40)
        ))
    };
    let (lo, hi) = text.split_once(',').ok_or_else(bad)?;
    let (lo, hi): (f64, f64) = (
        lo.trim().parse().map_err(|_| bad())?,
        hi.trim().parse().map_err(|_| bad())?,
    );
    if lo.is_finite() && hi.is_finite() && lo < hi {
        Ok((lo, hi))
    } else {
        Err(bad())
    }
}
