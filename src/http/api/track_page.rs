//! The consignee's page, rendered on the server so that it reads without JavaScript; a small
//! script (`/assets/track.js`) reloads it when `eta.json` says the estimate moved. Every text
//! the carrier wrote (stop ids) is escaped.

use chrono::{DateTime, Utc};
use chrono_tz::Europe::Paris;

use crate::http::api::estimates::{LiveRisk, LiveStopState};
use crate::http::api::sharing::{PublicStop, PublicTracking};
use crate::tracking::sharing::{Access, Language};

struct Texts {
    title: &'static str,
    status: &'static str,
    planned: &'static str,
    in_transit: &'static str,
    delivered: &'static str,
    cancelled: &'static str,
    stop: &'static str,
    eta: &'static str,
    arrived: &'static str,
    band: &'static str,
    between: &'static str,
    and: &'static str,
    window: &'static str,
    no_window: &'static str,
    risk: &'static str,
    on_time: &'static str,
    at_risk: &'static str,
    late: &'static str,
    not_estimated: &'static str,
    position: &'static str,
    updated: &'static str,
    expires: &'static str,
    times: &'static str,
    expired: &'static str,
    revoked: &'static str,
    closed_detail: &'static str,
    unknown: &'static str,
    unknown_detail: &'static str,
    date_format: &'static str,
}

const FR: Texts = Texts {
    title: "Suivi de livraison",
    status: "Statut",
    planned: "Planifiée",
    in_transit: "En route",
    delivered: "Livrée",
    cancelled: "Annulée",
    stop: "Arrêt",
    eta: "Arrivée prévue",
    arrived: "Arrivé",
    band: "Fourchette",
    between: "entre",
    and: "et",
    window: "Créneau",
    no_window: "sans créneau",
    risk: "Ponctualité",
    on_time: "À l'heure",
    at_risk: "Retard possible",
    late: "En retard",
    not_estimated: "pas encore estimée",
    position: "Dernière position du camion",
    updated: "Mis à jour",
    expires: "Lien valable jusqu'au",
    times: "Heures de Paris.",
    expired: "Ce lien de suivi a expiré.",
    revoked: "Ce lien de suivi a été révoqué.",
    closed_detail: "Demandez un nouveau lien à votre transporteur.",
    unknown: "Lien de suivi inconnu.",
    unknown_detail: "Vérifiez l'adresse reçue de votre transporteur.",
    date_format: "%d/%m/%Y %H:%M",
};

const EN: Texts = Texts {
    title: "Delivery tracking",
    status: "Status",
    planned: "Planned",
    in_transit: "On the road",
    delivered: "Delivered",
    cancelled: "Cancelled",
    stop: "Stop",
    eta: "Expected arrival",
    arrived: "Arrived",
    band: "Range",
    between: "between",
    and: "and",
    window: "Window",
    no_window: "no window",
    risk: "Punctuality",
    on_time: "On time",
    at_risk: "May be late",
    late: "Late",
    not_estimated: "not estimated yet",
    position: "Truck's last position",
    updated: "Updated",
    expires: "Link valid until",
    times: "Paris time.",
    expired: "This tracking link has expired.",
    revoked: "This tracking link was revoked.",
    closed_detail: "Ask your carrier for a new link.",
    unknown: "Unknown tracking link.",
    unknown_detail: "Check the address your carrier sent.",
    date_format: "%d %b %Y %H:%M",
};

fn texts(language: Language) -> &'static Texts {
    match language {
        Language::Fr => &FR,
        Language::En => &EN,
    }
}

/// The page of an open link.
pub fn open(language: Language, tracking: &PublicTracking) -> String {
    let texts = texts(language);
    let status = match tracking.status.as_str() {
        "planned" => texts.planned,
        "in_transit" => texts.in_transit,
        "delivered" => texts.delivered,
        _ => texts.cancelled,
    };
    let mut body = format!(
        "<h1>{}</h1>\n<p class=\"status\">{} : <strong>{status}</strong></p>\n<ol class=\"stops\">\n",
        texts.title, texts.status
    );
    for stop in &tracking.stops {
        body.push_str(&stop_item(texts, stop));
    }
    body.push_str("</ol>\n");
    body.push_str(&notes(texts, tracking));
    let stamp = tracking
        .updated_at
        .map(|at| at.to_rfc3339())
        .unwrap_or_default();
    page(
        language,
        texts.title,
        &format!("data-updated=\"{}\"", escape(&stamp)),
        &body,
    )
}

/// One stop of the list: its ETA, its band while the truck is on its way, its window and its
/// risk.
fn stop_item(texts: &Texts, stop: &PublicStop) -> String {
    let when = |at: DateTime<Utc>| time(texts, at);
    let eta = match (stop.eta, stop.state) {
        (None, _) => texts.not_estimated.to_owned(),
        (Some(at), LiveStopState::Pending) => when(at),
        (Some(at), LiveStopState::Arrived | LiveStopState::Departed) => {
            format!("{} {}", texts.arrived, when(at))
        }
    };
    let band = match (stop.eta_p10, stop.eta_p90, stop.state) {
        (Some(p10), Some(p90), LiveStopState::Pending) => format!(
            "<dt>{}</dt><dd>{} {} {} {}</dd>",
            texts.band,
            texts.between,
            when(p10),
            texts.and,
            when(p90)
        ),
        _ => String::new(),
    };
    let window = match &stop.window {
        Some(window) => format!(
            "{} – {}",
            escape(&parsed_time(texts, &window.start)),
            escape(&parsed_time(texts, &window.end))
        ),
        None => texts.no_window.to_owned(),
    };
    let risk = stop
        .severity
        .map(|severity| {
            let said = match severity {
                LiveRisk::OnTime => texts.on_time,
                LiveRisk::AtRisk => texts.at_risk,
                LiveRisk::Late => texts.late,
            };
            format!("<dt>{}</dt><dd>{said}</dd>", texts.risk)
        })
        .unwrap_or_default();
    format!(
        "<li><h2>{} : {}</h2><dl><dt>{}</dt><dd class=\"eta\">{eta}</dd>{band}\
         <dt>{}</dt><dd>{window}</dd>{risk}</dl></li>\n",
        texts.stop,
        escape(&stop.id),
        texts.eta,
        texts.window,
    )
}

/// Below the stops: the truck's position when the link shows it, when the page was updated and
/// until when the link opens it.
fn notes(texts: &Texts, tracking: &PublicTracking) -> String {
    let when = |at: DateTime<Utc>| time(texts, at);
    let mut notes = String::new();
    if let Some(position) = tracking.position {
        notes.push_str(&format!(
            "<p class=\"position\">{} : {:.4}, {:.4} ({})</p>\n",
            texts.position,
            position.lat,
            position.lon,
            when(position.at)
        ));
    }
    let updated = tracking
        .updated_at
        .map(|at| format!("{} {}. ", texts.updated, when(at)))
        .unwrap_or_default();
    notes.push_str(&format!(
        "<p class=\"note\">{} {updated}{} {}.</p>\n",
        texts.times,
        texts.expires,
        when(tracking.expires_at)
    ));
    notes
}

/// The page of a link that no longer opens (410).
pub fn closed(language: Language, access: Access) -> String {
    let texts = texts(language);
    let headline = match access {
        Access::Revoked => texts.revoked,
        Access::Expired | Access::Open => texts.expired,
    };
    let body = format!(
        "<h1>{}</h1>\n<p class=\"gone\">{headline}</p>\n<p>{}</p>\n",
        texts.title, texts.closed_detail
    );
    page(language, texts.title, "", &body)
}

/// The page of a token no link has (404).
pub fn unknown(language: Language) -> String {
    let texts = texts(language);
    let body = format!(
        "<h1>{}</h1>\n<p class=\"gone\">{}</p>\n<p>{}</p>\n",
        texts.title, texts.unknown, texts.unknown_detail
    );
    page(language, texts.title, "", &body)
}

fn page(language: Language, title: &str, body_attributes: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"{lang}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"robots\" content=\"noindex\">\n<title>{title}</title>\n<style>{STYLE}</style>\n\
         </head>\n<body {body_attributes}>\n<main>\n{body}</main>\n\
         <script src=\"/assets/track.js\" defer></script>\n</body>\n</html>\n",
        lang = language.as_str(),
    )
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#1a1a1a;background:#f6f6f4}\
main{max-width:40rem;margin:0 auto;padding:1.5rem}h1{font-size:1.5rem}h2{font-size:1.1rem;margin:0 0 .5rem}\
ol{list-style:none;padding:0}li{background:#fff;border:1px solid #ccc;border-radius:.5rem;padding:1rem;margin:0 0 1rem}\
dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem;margin:0}dt{font-weight:600}dd{margin:0}\
.eta{font-size:1.2rem;font-weight:700}.note{color:#444;font-size:.9rem}";

fn time(texts: &Texts, at: DateTime<Utc>) -> String {
    at.with_timezone(&Paris)
        .format(texts.date_format)
        .to_string()
}

/// A window's end as the page shows it; as written when it does not parse.
fn parsed_time(texts: &Texts, text: &str) -> String {
    DateTime::parse_from_rfc3339(text)
        .map(|at| time(texts, at.with_timezone(&Utc)))
        .unwrap_or_else(|_| text.to_owned())
}

fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_id_cannot_write_markup() {
        assert_eq!(
            escape("<script>\"x\"&'"),
            "&lt;script&gt;&quot;x&quot;&amp;&#39;"
        );
    }
}
