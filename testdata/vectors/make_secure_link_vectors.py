#!/usr/bin/env python3
"""Writes secure-link-nginx-1.22.json: requests and the status Debian's nginx 1.22.1 gives them.

Each case was sent to nginx configured as the Gcore edge (testdata/nginx/gcore-edge.conf.in)
and the status recorded here is the one nginx answered; the test `vectors::nginx_agrees` sends
them again on every CI run, so a vector that stops matching nginx fails CI. Tokens are computed
with Python's hashlib, independently of the Rust code. Expiry times are far in the past
(1000000000) or future (2147483647), so the statuses do not depend on the clock.
Run: python3 testdata/vectors/make_secure_link_vectors.py > testdata/vectors/secure-link-nginx-1.22.json
"""
import base64, hashlib, json

KEY = "secret_key"
FUTURE, PAST = "2147483647", "1000000000"

def tok(expires, uri, ip=""):
    d = hashlib.md5(f"{expires}{uri}{ip} {KEY}".encode("latin-1")).digest()
    return base64.urlsafe_b64encode(d).decode().rstrip("=")

def link(path, uri, expires=FUTURE, ip="", extra=""):
    return f"{path}?md5={tok(expires, uri, ip)}&expires={expires}{extra}"

cases = []
def case(name, target, status, ip=None):
    cases.append({"name": name, "target": target, "ip": ip, "status": status})

T = tok(FUTURE, "/images/1.jpg")
case("gcore_doc_link_without_ip", link("/images/1.jpg", "/images/1.jpg"), 200)
case("gcore_doc_link_with_ip", link("/images/1.jpg", "/images/1.jpg", ip="1.2.3.4"), 200, "1.2.3.4")
case("ip_bound_from_other_address", link("/images/1.jpg", "/images/1.jpg", ip="1.2.3.4"), 403, "1.2.3.5")
case("expired_right_token", link("/images/1.jpg", "/images/1.jpg", expires=PAST), 410)
case("expired_wrong_token_is_403", f"/images/2.jpg?md5={tok(PAST, '/images/1.jpg')}&expires={PAST}", 403)
case("missing_token", f"/images/1.jpg?expires={FUTURE}", 403)
case("missing_expires", f"/images/1.jpg?md5={T}", 403)
case("no_query", "/images/1.jpg", 403)
case("params_reversed", f"/images/1.jpg?expires={FUTURE}&md5={T}", 200)
case("param_names_uppercase", f"/images/1.jpg?MD5={T}&EXPIRES={FUTURE}", 200)
case("first_md5_wins_good_first", f"/images/1.jpg?md5={T}&md5=AAAAAAAAAAAAAAAAAAAAAA&expires={FUTURE}", 200)
case("first_md5_wins_bad_first", f"/images/1.jpg?md5=AAAAAAAAAAAAAAAAAAAAAA&md5={T}&expires={FUTURE}", 403)
case("semicolon_does_not_separate", f"/images/1.jpg?x=1;md5={T}&expires={FUTURE}", 403)
case("name_suffix_does_not_match", f"/images/1.jpg?xmd5={T}&expires={FUTURE}", 403)
case("padding_one", f"/images/1.jpg?md5={T}=&expires={FUTURE}", 200)
case("padding_two", f"/images/1.jpg?md5={T}==&expires={FUTURE}", 200)
case("padding_three_too_long", f"/images/1.jpg?md5={T}===&expires={FUTURE}", 403)
case("junk_after_padding", f"/images/1.jpg?md5={T}=x&expires={FUTURE}", 200)
case("comma_after_padding", f"/images/1.jpg?md5={T}=,&expires={FUTURE}", 403)
low = T[:-1] + "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".index(T[-1]) & 0x30) | 0x0f]
case("unused_low_bits_ignored", f"/images/1.jpg?md5={low}&expires={FUTURE}", 200)
std = base64.b64encode(hashlib.md5(f"{FUTURE}/images/1.jpg {KEY}".encode()).digest()).decode().rstrip("=")
if "+" in std or "/" in std:
    case("standard_base64_refused", f"/images/1.jpg?md5={std}&expires={FUTURE}", 403)
case("percent_encoded_token_not_decoded", f"/images/1.jpg?md5={T[:-1]}%{ord(T[-1]):02X}&expires={FUTURE}", 403)
case("token_21_chars", f"/images/1.jpg?md5={T[:-1]}&expires={FUTURE}", 403)
case("token_23_chars", f"/images/1.jpg?md5={T}A&expires={FUTURE}", 403)
case("expires_leading_zero_hashed_raw", link("/images/1.jpg", "/images/1.jpg", expires="0" + FUTURE), 200)
case("expires_leading_zero_not_same_token", f"/images/1.jpg?md5={T}&expires=0{FUTURE}", 403)
case("expires_zero", link("/images/1.jpg", "/images/1.jpg", expires="0"), 403)
case("expires_plus_sign", link("/images/1.jpg", "/images/1.jpg", expires="+2147483647"), 403)
case("expires_negative", link("/images/1.jpg", "/images/1.jpg", expires="-1"), 403)
case("expires_i64_max", link("/images/1.jpg", "/images/1.jpg", expires="9223372036854775807"), 200)
case("expires_i64_overflow", link("/images/1.jpg", "/images/1.jpg", expires="9223372036854775808"), 403)
case("expires_empty", f"/images/1.jpg?md5={T}&expires=", 403)
case("percent_decoded_path", link("/a%20b.jpg", "/a b.jpg"), 200)
case("percent_decoded_utf8", link("/caf%C3%A9.jpg", "/caf\u00c3\u00a9.jpg"), 200)
case("raw_utf8_path", link("/caf\u00e9.jpg", "/caf\u00c3\u00a9.jpg"), 200)
case("merged_slashes", link("//images///1.jpg", "/images/1.jpg"), 200)
case("dot_segments", link("/images/./x/../1.jpg", "/images/1.jpg"), 200)
case("encoded_slash_merges", link("/images%2F%2F1.jpg", "/images/1.jpg"), 200)
case("encoded_dots_climb", link("/x/%2e%2e/images/1.jpg", "/images/1.jpg"), 200)
case("encoded_question_mark_literal", link("/a%3Fb", "/a?b"), 200)
case("encoded_hash_literal", link("/a%23b", "/a#b"), 200)
case("encoded_percent_literal", link("/a%2541", "/a%41"), 200)
case("plus_not_decoded", link("/a+b", "/a+b"), 200)
case("trailing_dot_segment", link("/images/.", "/images/"), 200)
case("trailing_dotdot_segment", link("/images/x/..", "/images/"), 200)
case("dotdot_above_root", f"/../images/1.jpg?md5={T}&expires={FUTURE}", 400)
case("encoded_dotdot_above_root", f"/%2e%2e/images/1.jpg?md5={T}&expires={FUTURE}", 400)
case("bad_escape", f"/images/%zz.jpg?md5={T}&expires={FUTURE}", 400)
case("truncated_escape", "/images/1.jpg%2", 400)
case("encoded_nul", "/images/%00.jpg", 400)
case("control_char_in_path", "/images/\t1.jpg", 400)
case("control_char_in_query", f"/images/1.jpg?md5={T}&expires={FUTURE}&x=\u0001", 400)
case("del_in_path", "/images/\u007f.jpg", 400)
case("bad_escape_in_query_is_fine", link("/images/1.jpg", "/images/1.jpg", extra="&x=%zz"), 200)
case("hash_ends_path", f"/images/1.jpg#frag?md5={T}&expires={FUTURE}", 403)
case("hash_ends_query", f"/images/1.jpg?md5={T}&expires={FUTURE}#frag", 200)
case("hash_inside_expires", f"/images/1.jpg?md5={T}&expires=21474#83647", 403)
for ip, printed in [("::1", "::1"), ("2001:DB8::1", "2001:db8::1"),
                    ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
                    ("::ffff:1.2.3.4", "::ffff:1.2.3.4"), ("::1.2.3.4", "::1.2.3.4"),
                    ("::abcd", "::0.0.171.205"), ("::101", "::101"),
                    ("::ffff:0:1.2.3.4", "::ffff:0:102:304"), ("fe80::", "fe80::")]:
    case(f"ipv6_remote_addr_{printed}", link("/v6.jpg", "/v6.jpg", ip=printed), 200, ip)
case("ipv6_rust_display_form_refused", link("/v6.jpg", "/v6.jpg", ip="::abcd"), 403, "::abcd")

print(json.dumps({
    "source": "observed on Debian nginx 1.22.1-9+deb12u11 (bookworm) with testdata/nginx/gcore-edge.conf.in; "
              "re-checked against nginx by every CI run",
    "key": KEY,
    "now": 1800000000,
    "cases": cases,
}, indent=1, ensure_ascii=False))
