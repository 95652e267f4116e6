//! GetCapabilities: the service, its operations and every layer (each
//! variable of the latest run by name, and of every run as `<run>/<var>`),
//! in the form of WMS 1.3.0 or 1.1.1. The document is written in steps, one
//! per part of it, into one string.

use std::fmt::Write;

use axum::http::{header, HeaderMap};
use axum::response::IntoResponse;
use finecast_render::Palette;

use super::{version, xml_escape, WmsResult};
use crate::api::extract::{base_url, Params};
use crate::api::legend::{LEGEND_DEFAULT_HEIGHT, LEGEND_WIDTH};
use crate::api::state::App;
use crate::store::{Run, VarMeta};
use crate::times::iso;

/// What every part of the document depends on.
struct Capabilities {
    /// WMS 1.3.0 rather than 1.1.1.
    v13: bool,
    /// `http://host:port` of the server as the client addressed it.
    base: String,
    /// Element name of coordinate systems: `CRS` in 1.3.0, `SRS` in 1.1.1.
    crs_tag: &'static str,
}

/// GetCapabilities: the capabilities document of the version asked for.
pub fn capabilities(app: &App, p: &Params, headers: &HeaderMap) -> WmsResult {
    let v13 = version(p) == "1.3.0";
    let caps = Capabilities {
        v13,
        base: base_url(app, headers),
        crs_tag: if v13 { "CRS" } else { "SRS" },
    };
    let mut x = String::new();
    caps.service(&mut x, app.config.max_image_px);
    caps.operations(&mut x);
    caps.layers(&mut x, &app.store.list());
    let (root, ctype) = if v13 {
        ("WMS_Capabilities", "text/xml; charset=utf-8")
    } else {
        ("WMT_MS_Capabilities", "application/vnd.ogc.wms_xml")
    };
    let _ = write!(x, "</Capability></{root}>");
    Ok(([(header::CONTENT_TYPE, ctype)], x).into_response())
}

impl Capabilities {
    /// The service URL (for OnlineResource), escaped for XML.
    fn service_url(&self) -> String {
        xml_escape(&format!("{}/wms?", self.base))
    }

    /// The XML declaration, the root element and `<Service>` (with the
    /// largest image, `max` pixels, in 1.3.0), up to the opening of
    /// `<Capability><Request>`.
    fn service(&self, x: &mut String, max: u32) {
        let base = self.service_url();
        if self.v13 {
            let _ = write!(
                x,
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<WMS_Capabilities version=\"1.3.0\" xmlns=\"http://www.opengis.net/wms\" \
                 xmlns:xlink=\"http://www.w3.org/1999/xlink\">\n<Service><Name>WMS</Name><Title>finecast downscaled forecasts</Title>\
                 <Abstract>Downscaled ~3 km weather fields served by finecast</Abstract>\
                 <OnlineResource xlink:type=\"simple\" xlink:href=\"{base}\"/><Fees>none</Fees><AccessConstraints>none</AccessConstraints>\
                 <LayerLimit>1</LayerLimit><MaxWidth>{max}</MaxWidth><MaxHeight>{max}</MaxHeight></Service>\n<Capability><Request>"
            );
        } else {
            let _ = write!(
                x,
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<WMT_MS_Capabilities version=\"1.1.1\">\n<Service><Name>OGC:WMS</Name>\
                 <Title>finecast downscaled forecasts</Title><OnlineResource xmlns:xlink=\"http://www.w3.org/1999/xlink\" \
                 xlink:type=\"simple\" xlink:href=\"{base}\"/></Service>\n<Capability><Request>"
            );
        }
    }

    /// The operations with their formats and URL, then the exception format;
    /// closes `<Request>`.
    fn operations(&self, x: &mut String) {
        let dcp = format!(
            "<DCPType><HTTP><Get><OnlineResource xmlns:xlink=\"http://www.w3.org/1999/xlink\" xlink:type=\"simple\" xlink:href=\"{}\"/></Get></HTTP></DCPType>",
            self.service_url()
        );
        let caps_format = if self.v13 {
            "text/xml"
        } else {
            "application/vnd.ogc.wms_xml"
        };
        for (op, formats) in [
            ("GetCapabilities", vec![caps_format]),
            ("GetMap", vec!["image/png", "image/jpeg"]),
            ("GetFeatureInfo", vec!["text/plain", "application/json"]),
        ] {
            let _ = write!(x, "<{op}>");
            for f in formats {
                let _ = write!(x, "<Format>{f}</Format>");
            }
            let _ = write!(x, "{dcp}</{op}>");
        }
        let _ = write!(
            x,
            "</Request><Exception><Format>{}</Format></Exception>",
            if self.v13 {
                "XML"
            } else {
                "application/vnd.ogc.se_xml"
            }
        );
    }

    /// The root layer with the supported CRSs, holding the layers by
    /// variable name (the latest run; other runs by DIM_REFERENCE_TIME) and
    /// a group per run with its layers as `<run>/<var>`.
    fn layers(&self, x: &mut String, runs: &[std::sync::Arc<Run>]) {
        let crs_tag = self.crs_tag;
        let _ = write!(x, "<Layer><Title>finecast</Title>");
        for c in ["EPSG:4326", "CRS:84", "EPSG:3857"] {
            let _ = write!(x, "<{crs_tag}>{c}</{crs_tag}>");
        }
        if let Some(latest) = runs.first() {
            let _ = write!(
                x,
                "<Layer><Title>Latest run ({})</Title>",
                xml_escape(&latest.meta.id)
            );
            for var in &latest.meta.variables {
                let refs: Vec<String> = runs
                    .iter()
                    .filter(|r| r.var(&var.name).is_ok())
                    .filter_map(|r| r.meta.reference_time.as_ref().map(iso))
                    .collect();
                self.layer(x, &var.name, latest, var, &refs);
            }
            let _ = write!(x, "</Layer>");
        }
        for run in runs {
            let _ = write!(
                x,
                "<Layer><Title>Run {} ({})</Title>",
                xml_escape(&run.meta.id),
                xml_escape(&run.meta.method)
            );
            for var in &run.meta.variables {
                let name = format!("{}/{}", run.meta.id, var.name);
                self.layer(x, &name, run, var, &[]);
            }
            let _ = write!(x, "</Layer>");
        }
        let _ = write!(x, "</Layer>");
    }

    /// One layer: `var` of `run`, named `name`; `references` are the
    /// reference times a layer by variable name can take (empty: only the
    /// run's own).
    fn layer(&self, x: &mut String, name: &str, run: &Run, var: &VarMeta, references: &[String]) {
        let title = xml_escape(var.long_name.as_deref().unwrap_or(&var.name));
        let _ = write!(
            x,
            "<Layer queryable=\"1\" opaque=\"0\"><Name>{}</Name><Title>{title} [{}]</Title>",
            xml_escape(name),
            xml_escape(&var.units)
        );
        let _ = write!(
            x,
            "<Abstract>{} from finecast run {} (method {})</Abstract>",
            xml_escape(&var.name),
            xml_escape(&run.meta.id),
            xml_escape(&run.meta.method)
        );
        self.bounding_boxes(x, run.meta.bbox);
        self.dimensions(x, run, var, references);
        self.styles(x, name, var);
        let _ = write!(x, "</Layer>");
    }

    /// The extent `[west, south, east, north]` (degrees) in every CRS, in
    /// each version's axis order.
    fn bounding_boxes(&self, x: &mut String, b: [f64; 4]) {
        if self.v13 {
            let _ = write!(
                x,
                "<EX_GeographicBoundingBox><westBoundLongitude>{}</westBoundLongitude><eastBoundLongitude>{}</eastBoundLongitude>\
                 <southBoundLatitude>{}</southBoundLatitude><northBoundLatitude>{}</northBoundLatitude></EX_GeographicBoundingBox>",
                b[0], b[2], b[1], b[3]
            );
            let _ = write!(
                x,
                "<BoundingBox CRS=\"CRS:84\" minx=\"{}\" miny=\"{}\" maxx=\"{}\" maxy=\"{}\"/>",
                b[0], b[1], b[2], b[3]
            );
            // Latitude first for EPSG:4326 in 1.3.0.
            let _ = write!(
                x,
                "<BoundingBox CRS=\"EPSG:4326\" minx=\"{}\" miny=\"{}\" maxx=\"{}\" maxy=\"{}\"/>",
                b[1], b[0], b[3], b[2]
            );
        } else {
            let _ = write!(
                x,
                "<LatLonBoundingBox minx=\"{}\" miny=\"{}\" maxx=\"{}\" maxy=\"{}\"/>",
                b[0], b[1], b[2], b[3]
            );
            let _ = write!(
                x,
                "<BoundingBox SRS=\"EPSG:4326\" minx=\"{}\" miny=\"{}\" maxx=\"{}\" maxy=\"{}\"/>",
                b[0], b[1], b[2], b[3]
            );
        }
        let crs_tag = self.crs_tag;
        let (mx0, my0) = crate::raster::lonlat_to_mercator(b[0], b[1]);
        let (mx1, my1) = crate::raster::lonlat_to_mercator(b[2], b[3]);
        let _ = write!(x, "<BoundingBox {crs_tag}=\"EPSG:3857\" minx=\"{mx0:.1}\" miny=\"{my0:.1}\" maxx=\"{mx1:.1}\" maxy=\"{my1:.1}\"/>");
    }

    /// The time and reference-time dimensions (1.1.1 declares a dimension
    /// and gives its values as an extent).
    fn dimensions(&self, x: &mut String, run: &Run, var: &VarMeta, references: &[String]) {
        let times: Vec<String> = var.times.iter().map(iso).collect();
        if !times.is_empty() {
            if self.v13 {
                let _ = write!(x, "<Dimension name=\"time\" units=\"ISO8601\" default=\"{}\" nearestValue=\"0\">{}</Dimension>", times[0], times.join(","));
            } else {
                let _ = write!(x, "<Dimension name=\"time\" units=\"ISO8601\"/><Extent name=\"time\" default=\"{}\" nearestValue=\"0\">{}</Extent>", times[0], times.join(","));
            }
        }
        if let Some(r) = run.meta.reference_time.as_ref().map(iso) {
            let values = if references.is_empty() {
                r.clone()
            } else {
                references.join(",")
            };
            if self.v13 {
                let _ = write!(x, "<Dimension name=\"reference_time\" units=\"ISO8601\" default=\"{r}\">{values}</Dimension>");
            } else {
                let _ = write!(x, "<Dimension name=\"reference_time\" units=\"ISO8601\"/><Extent name=\"reference_time\" default=\"{r}\">{values}</Extent>");
            }
        }
    }

    /// A style per palette, the variable's own first (clients take the first
    /// as the default), each with its legend URL.
    fn styles(&self, x: &mut String, name: &str, var: &VarMeta) {
        let default = Palette::by_name(&var.palette)
            .map(|p| p.name)
            .unwrap_or("wind");
        let mut names: Vec<&str> = vec![default];
        names.extend(Palette::NAMES.iter().copied().filter(|n| *n != default));
        for pal in names {
            let legend = xml_escape(&format!(
                "{}/wms?SERVICE=WMS&REQUEST=GetLegendGraphic&VERSION=1.3.0&FORMAT=image/png&LAYER={name}&STYLE=raster/{pal}",
                self.base
            ));
            let _ = write!(
                x,
                "<Style><Name>raster/{pal}</Name><Title>{pal} colour ramp</Title><LegendURL width=\"{LEGEND_WIDTH}\" height=\"{LEGEND_DEFAULT_HEIGHT}\"><Format>image/png</Format>\
                 <OnlineResource xmlns:xlink=\"http://www.w3.org/1999/xlink\" xlink:type=\"simple\" xlink:href=\"{legend}\"/></LegendURL></Style>"
            );
        }
    }
}
