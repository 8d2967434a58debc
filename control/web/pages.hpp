// The admin web pages served by sekisho-control. Every page is a static
// HTML shell with its script and style sheet (control/web/assets/, compiled
// in); the scripts call the JSON API with the session cookie and the
// session's CSRF token (from GET /api/me) and write every mail-derived
// string with textContent or setAttribute on safe attributes only -- no
// innerHTML, no HTML built from strings, links built with
// encodeURIComponent.
//
//   /login                 login form (open)
//   /                      303 to /log
//   /log                   tracking-log search, paging, CSV export link
//   /message?id=EVENT_ID   one message: envelope, headers, verdict, rules, attachments
//   /quarantine            held messages with filters
//   /quarantine/view?id=ID headers, safe text, release and delete buttons
//   /rules                 ruleset versions: upload, check, activate, roll back
//   /policy                policy rules
//   /static/NAME           the scripts and the style sheet (open)
//   /favicon.ico           204 (open)
//
// Every answer carries a strict Content-Security-Policy (kContentSecurityPolicy:
// scripts and styles from this origin only, no inline script or style, no
// plugins, no framing), X-Frame-Options: DENY and Referrer-Policy:
// no-referrer.
//
// Thread-safety: the handlers hold no state.
#pragma once

#include "control/http/router.hpp"

namespace sekisho::control::web {

inline constexpr const char* kContentSecurityPolicy =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

// Adds the page routes; pages need `access` (static files and /login are open).
void add_web_routes(http::Router& router, http::Access access = http::Access::user);

// The page headers above, for any response.
void page_headers(http::Response& res);

}  // namespace sekisho::control::web
