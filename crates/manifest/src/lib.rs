//! Query string forwarding: rewriting the links inside HLS playlists and DASH manifests so that
//! they carry the playlist's token (Gcore's "Query String Forwarding"), or a token of their own
//! directory (Tollgate's `sign_each_directory`).
//!
//! The rewrite works on the stored (un-rewritten) body for every request, in one pass, copying
//! everything it does not change byte for byte: a manifest without links comes back identical.
//! Only links whose file type is listed are touched, only relative links or absolute ones to the
//! resource's own hostnames (a token is never handed to a third-party host), and never a link
//! that already carries one of the forwarded parameters.

use std::collections::HashMap;

use tollgate_token::{sign::digest, Key, RemoteAddr, Token};

/// What kind of manifest a file is, by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `.m3u8` / `.m3u`: line-based, URIs on their own lines and in `URI="..."` attributes.
    Hls,
    /// `.mpd`: XML, URIs in `media`, `initialization`, `sourceURL` attributes and `<BaseURL>`.
    Dash,
}

impl Kind {
    /// The kind for a lower-case extension.
    pub fn of_extension(ext: &str) -> Option<Kind> {
        match ext {
            "m3u8" | "m3u" => Some(Kind::Hls),
            "mpd" => Some(Kind::Dash),
            _ => None,
        }
    }
}

/// The extension of the last segment of `path` (before any `?` or `#`), lower-cased.
pub fn extension(path: &[u8]) -> Option<String> {
    let end = path
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(path.len());
    let path = &path[..end];
    let name = &path[path.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1)..];
    let dot = name.iter().rposition(|&b| b == b'.')?;
    let ext = &name[dot + 1..];
    (!ext.is_empty() && ext.len() <= 16).then(|| String::from_utf8_lossy(ext).to_ascii_lowercase())
}

/// What a forwarded link gets.
pub enum Addition<'a> {
    /// These parameters (`md5=...&expires=...`), copied from the playlist request.
    Copy(&'a [u8]),
    /// A token for the link's own directory, for directories under `scope`.
    SignEachDirectory {
        /// The signing key.
        key: &'a Key,
        /// The playlist request's `expires`, as sent.
        expires: &'a [u8],
        /// The client address, for resources that bind tokens to it.
        ip: Option<RemoteAddr>,
        /// Only directories under this one (the playlist's, ending in `/`) are signed.
        scope: &'a [u8],
    },
}

/// One rewrite's settings.
pub struct Rewrite<'a> {
    /// Extensions (lower case) of the links that get parameters.
    pub to_types: &'a [String],
    /// Names of the parameters added (a link carrying one already is left alone).
    pub param_names: &'a [&'a [u8]],
    /// What they get.
    pub addition: Addition<'a>,
    /// The playlist's directory (`$uri` up to its last `/`), to resolve relative links.
    pub base_dir: &'a [u8],
    /// Whether a host (as written in an absolute link, port included) is the resource's own.
    pub own_host: &'a dyn Fn(&[u8]) -> bool,
}

/// Rewrites `body` of `kind`, whole.
pub fn rewrite(kind: Kind, body: &[u8], rw: &Rewrite<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / 4 + 64);
    let mut r = Rewriter::new(kind);
    r.push(body, rw, &mut out);
    r.finish(rw, &mut out);
    out
}

/// A rewrite fed in pieces, so that a manifest goes out as it is rewritten and a viewer holds
/// a piece of it, not a rewritten copy (which is several times the manifest: every short
/// segment name gains a token). The pieces are cut where the whole-body rewrite has no state
/// to carry: after a line's end (HLS); before a tag, outside a `<BaseURL>` element, whose text
/// runs to the next `<` of any kind (DASH). Each byte is scanned once, however the input is
/// pieced; what is held between pieces is the part after the last cut, at most
/// [`MAX_PENDING`] bytes.
pub struct Rewriter {
    kind: Kind,
    tokens: Tokens,
    /// Input not rewritten yet.
    pending: Vec<u8>,
    /// How much of `pending` has been scanned for cuts.
    scanned: usize,
    /// The last place `pending` may be cut, if any.
    cut: Option<usize>,
    /// DASH: inside a `<BaseURL>` element (no cut until its end tag).
    in_base: bool,
}

/// The most input a [`Rewriter`] holds back waiting for a place to cut. Past it (a line of a
/// quarter of a megabyte: no real manifest has one), it is rewritten as if it ended there.
pub const MAX_PENDING: usize = 256 << 10;

/// Enough of a tag to tell `<BaseURL`, `</BaseURL` and the rest apart.
const TAG_PREFIX: usize = b"</BaseURL".len() + 1;

impl Rewriter {
    /// A rewriter for a manifest of `kind`.
    pub fn new(kind: Kind) -> Rewriter {
        Rewriter {
            kind,
            tokens: HashMap::new(),
            pending: Vec::new(),
            scanned: 0,
            cut: None,
            in_base: false,
        }
    }

    /// Rewrites what `input` completes into `out`, keeping the rest for the next piece.
    pub fn push(&mut self, input: &[u8], rw: &Rewrite<'_>, out: &mut Vec<u8>) {
        self.pending.extend_from_slice(input);
        self.scan();
        if let Some(at) = self.cut.take() {
            let held = std::mem::take(&mut self.pending);
            self.run(&held[..at], rw, out);
            self.pending.extend_from_slice(&held[at..]);
            self.scanned -= at;
        }
        if self.pending.len() > MAX_PENDING {
            let held = std::mem::take(&mut self.pending);
            self.run(&held, rw, out);
            self.scanned = 0;
            self.in_base = false;
        }
    }

    /// Rewrites whatever is left: the manifest has ended.
    pub fn finish(&mut self, rw: &Rewrite<'_>, out: &mut Vec<u8>) {
        let held = std::mem::take(&mut self.pending);
        self.run(&held, rw, out);
        (self.scanned, self.cut, self.in_base) = (0, None, false);
    }

    /// Scans the bytes of `pending` not scanned yet, moving `cut` to the last place found.
    fn scan(&mut self) {
        let buf = &self.pending;
        match self.kind {
            Kind::Hls => {
                if let Some(i) = memchr::memrchr(b'\n', &buf[self.scanned..]) {
                    self.cut = Some(self.scanned + i + 1);
                }
                self.scanned = buf.len();
            }
            Kind::Dash => {
                let mut at = self.scanned;
                while let Some(rel) = memchr::memchr(b'<', &buf[at..]) {
                    let i = at + rel;
                    let tag = &buf[i..];
                    if tag.len() < TAG_PREFIX {
                        // Too short to tell: scanned again with the next piece.
                        self.scanned = i;
                        return;
                    }
                    if self.in_base {
                        self.in_base = !tag.starts_with(b"</BaseURL");
                    } else {
                        if i > 0 {
                            self.cut = Some(i);
                        }
                        if tag.starts_with(b"<BaseURL")
                            && (tag[8] == b'>' || tag[8].is_ascii_whitespace())
                        {
                            match memchr::memchr(b'>', tag) {
                                // `<BaseURL/>` has no text.
                                Some(end) => self.in_base = tag[end - 1] != b'/',
                                None => {
                                    self.scanned = i;
                                    return;
                                }
                            }
                        }
                    }
                    at = i + 1;
                }
                self.scanned = buf.len();
            }
        }
    }

    fn run(&mut self, piece: &[u8], rw: &Rewrite<'_>, out: &mut Vec<u8>) {
        if piece.is_empty() {
            return;
        }
        match self.kind {
            Kind::Hls => rewrite_hls(piece, rw, &mut self.tokens, out),
            Kind::Dash => rewrite_dash(piece, rw, &mut self.tokens, out),
        }
    }
}

type Tokens = HashMap<Vec<u8>, Option<Vec<u8>>>;

fn rewrite_hls(body: &[u8], rw: &Rewrite<'_>, tokens: &mut Tokens, out: &mut Vec<u8>) {
    for line in body.split_inclusive(|&b| b == b'\n') {
        // The line without its end (`\n` or `\r\n`) and trailing blanks.
        let content_end = line
            .iter()
            .rposition(|&b| !matches!(b, b'\n' | b'\r' | b' ' | b'\t'))
            .map_or(0, |i| i + 1);
        let content = &line[..content_end];
        if content.is_empty() {
            out.extend_from_slice(line);
        } else if content[0] == b'#' {
            match find(content, b"URI=\"") {
                Some(at) => {
                    let start = at + 5;
                    let len = content[start..]
                        .iter()
                        .position(|&b| b == b'"')
                        .unwrap_or(content.len() - start);
                    out.extend_from_slice(&line[..start]);
                    write_link(&content[start..start + len], rw, tokens, false, out);
                    out.extend_from_slice(&line[start + len..]);
                }
                None => out.extend_from_slice(line),
            }
        } else {
            let lead = content
                .iter()
                .position(|&b| b != b' ' && b != b'\t')
                .unwrap_or(0);
            out.extend_from_slice(&line[..lead]);
            write_link(&content[lead..], rw, tokens, false, out);
            out.extend_from_slice(&line[content_end..]);
        }
    }
}

const DASH_ATTRIBUTES: [&[u8]; 3] = [b"media=\"", b"initialization=\"", b"sourceURL=\""];

fn rewrite_dash(body: &[u8], rw: &Rewrite<'_>, tokens: &mut Tokens, out: &mut Vec<u8>) {
    let mut i = 0;
    while let Some(rel) = memchr::memchr2(b'=', b'>', &body[i..]) {
        let at = i + rel;
        if body[at] == b'=' {
            // An attribute we rewrite: whitespace, its name, `="`.
            let attr = DASH_ATTRIBUTES.iter().find(|a| {
                let name_len = a.len() - 2;
                at > name_len
                    && body[at - name_len..at] == a[..name_len]
                    && body[at - name_len - 1].is_ascii_whitespace()
                    && body.get(at + 1) == Some(&b'"')
            });
            if attr.is_some() {
                let start = at + 2;
                if let Some(len) = body[start..].iter().position(|&b| b == b'"') {
                    out.extend_from_slice(&body[i..start]);
                    write_link(&body[start..start + len], rw, tokens, true, out);
                    i = start + len;
                    continue;
                }
            }
            out.extend_from_slice(&body[i..=at]);
            i = at + 1;
        } else {
            // The end of a tag: `<BaseURL ...>` is followed by a link.
            out.extend_from_slice(&body[i..=at]);
            i = at + 1;
            let tag_start = body[..at].iter().rposition(|&b| b == b'<');
            let is_base = tag_start.is_some_and(|s| {
                body[s + 1..at].starts_with(b"BaseURL")
                    && body
                        .get(s + 8)
                        .is_some_and(|&b| b == b'>' || b.is_ascii_whitespace())
            });
            if is_base && body[at - 1] != b'/' {
                if let Some(len) = body[i..].iter().position(|&b| b == b'<') {
                    let text = &body[i..i + len];
                    let trimmed_start = text
                        .iter()
                        .position(|b| !b.is_ascii_whitespace())
                        .unwrap_or(text.len());
                    let trimmed_end = text
                        .iter()
                        .rposition(|b| !b.is_ascii_whitespace())
                        .map_or(trimmed_start, |e| e + 1);
                    out.extend_from_slice(&text[..trimmed_start]);
                    write_link(&text[trimmed_start..trimmed_end], rw, tokens, true, out);
                    out.extend_from_slice(&text[trimmed_end..]);
                    i += len;
                }
            }
        }
    }
    out.extend_from_slice(&body[i..]);
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

/// Writes `link`, with the addition when it qualifies. `xml`: `&` is written `&amp;`.
fn write_link(link: &[u8], rw: &Rewrite<'_>, tokens: &mut Tokens, xml: bool, out: &mut Vec<u8>) {
    match addition_for(link, rw, tokens) {
        None => out.extend_from_slice(link),
        Some(add) => {
            let frag = link.iter().position(|&b| b == b'#').unwrap_or(link.len());
            let (before, fragment) = link.split_at(frag);
            out.extend_from_slice(before);
            let has_query = before.contains(&b'?');
            match (has_query, before.last()) {
                (true, Some(b'?' | b'&')) => {}
                (true, _) => out.extend_from_slice(if xml { b"&amp;" } else { b"&" }),
                (false, _) => out.push(b'?'),
            }
            if xml {
                for part in add.split(|&b| b == b'&').enumerate() {
                    if part.0 > 0 {
                        out.extend_from_slice(b"&amp;");
                    }
                    out.extend_from_slice(part.1);
                }
            } else {
                out.extend_from_slice(add);
            }
            out.extend_from_slice(fragment);
        }
    }
}

/// The parameters `link` gets, or `None` when it is left as it is. No allocation per link:
/// tokens are computed once per directory as written in the manifest.
fn addition_for<'m>(link: &[u8], rw: &'m Rewrite<'_>, tokens: &'m mut Tokens) -> Option<&'m [u8]> {
    if link.is_empty() || link.starts_with(b"data:") {
        return None;
    }
    // The path part, made absolute.
    let (path, absolute) = if let Some(rest) = strip_scheme(link) {
        let host_end = rest
            .iter()
            .position(|&b| b == b'/' || b == b'?' || b == b'#')
            .unwrap_or(rest.len());
        let authority = &rest[..host_end];
        // A link with user information (`own.host@other.host`) goes to the host after the
        // `@`: never the resource's own, so never given a token.
        if authority.contains(&b'@') || !(rw.own_host)(authority) {
            return None;
        }
        (&rest[host_end..], true)
    } else {
        (link, link.starts_with(b"/"))
    };
    let end = path
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(path.len());
    let ext = extension(&path[..end])?;
    if !rw.to_types.contains(&ext) {
        return None;
    }
    let query = path[end..].strip_prefix(b"?").unwrap_or(b"");
    let query = &query[..query.iter().position(|&b| b == b'#').unwrap_or(query.len())];
    let carries = query
        .split(|&b| b == b'&')
        .filter_map(|p| p.split(|&b| b == b'=').next())
        // In XML the separator is written `&amp;`.
        .map(|n| n.strip_prefix(b"amp;").unwrap_or(n))
        .any(|n| rw.param_names.contains(&n));
    if carries {
        return None;
    }
    match &rw.addition {
        Addition::Copy(params) => Some(params),
        Addition::SignEachDirectory {
            key,
            expires,
            ip,
            scope,
        } => {
            // Keyed by the directory as written (and whether it is absolute), so the segments of
            // one directory cost one lookup each and one MD5 in all.
            let written_dir = &path[..path[..end]
                .iter()
                .rposition(|&b| b == b'/')
                .map_or(0, |i| i + 1)];
            let mut memo_key = Vec::new();
            let key_bytes: &[u8] = if absolute {
                memo_key.push(b'/');
                memo_key.extend_from_slice(written_dir);
                &memo_key
            } else {
                written_dir
            };
            if !tokens.contains_key(key_bytes) {
                let mut full = Vec::with_capacity(rw.base_dir.len() + end);
                if !absolute {
                    full.extend_from_slice(rw.base_dir);
                }
                full.extend_from_slice(&path[..end]);
                let params = resolve_dots(&full).and_then(|resolved| {
                    let dir = &resolved[..=resolved.iter().rposition(|&b| b == b'/')?];
                    dir.starts_with(scope).then(|| {
                        let d = digest(expires, dir, ip.as_ref(), key);
                        let mut p = b"md5=".to_vec();
                        p.extend_from_slice(Token::from_digest(&d).as_str().as_bytes());
                        p.extend_from_slice(b"&expires=");
                        p.extend_from_slice(expires);
                        p
                    })
                });
                tokens.insert(key_bytes.to_vec(), params);
            }
            tokens.get(key_bytes).and_then(|p| p.as_deref())
        }
    }
}

fn strip_scheme(link: &[u8]) -> Option<&[u8]> {
    let lower = |p: &[u8]| link.len() >= p.len() && link[..p.len()].eq_ignore_ascii_case(p);
    if lower(b"http://") {
        Some(&link[7..])
    } else if lower(b"https://") {
        Some(&link[8..])
    } else if link.starts_with(b"//") {
        Some(&link[2..])
    } else {
        None
    }
}

/// Resolves `.` and `..` segments of an absolute path (RFC 3986 5.2.4); `None` if it climbs
/// above the root. Percent-encoded bytes are left as they are: the directory signed is the one
/// the player will request, which the edge decodes before checking, so encoded links are
/// signed over their decoded form.
fn resolve_dots(path: &[u8]) -> Option<Vec<u8>> {
    let decoded = percent_decode(path);
    let mut segs: Vec<&[u8]> = Vec::new();
    let parts: Vec<&[u8]> = decoded.split(|&b| b == b'/').collect();
    let last = parts.len() - 1;
    for (i, seg) in parts.iter().enumerate().skip(1) {
        match *seg {
            b"." => {
                if i == last {
                    segs.push(b"");
                }
            }
            b".." => {
                segs.pop()?;
                if i == last {
                    segs.push(b"");
                }
            }
            s => segs.push(s),
        }
    }
    let mut out = Vec::with_capacity(decoded.len());
    for s in segs {
        out.push(b'/');
        out.extend_from_slice(s);
    }
    Some(out)
}

fn percent_decode(s: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' && i + 2 < s.len() {
            if let (Some(h), Some(l)) = (hex(s[i + 1]), hex(s[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn types() -> Vec<String> {
        ["ts", "m4s", "mp4", "m3u8", "key", "vtt", "aac"]
            .map(String::from)
            .to_vec()
    }

    fn copy(kind: Kind, body: &str) -> String {
        let t = types();
        let rw = Rewrite {
            to_types: &t,
            param_names: &[b"md5", b"expires"],
            addition: Addition::Copy(b"md5=TOK&expires=99"),
            base_dir: b"/v/",
            own_host: &|h| h == b"cdn.example.com",
        };
        String::from_utf8(rewrite(kind, body.as_bytes(), &rw)).unwrap()
    }

    #[test]
    fn hls_media_playlist() {
        let body = "#EXTM3U\r\n#EXT-X-VERSION:7\r\n#EXT-X-KEY:METHOD=AES-128,URI=\"enc.key\",IV=0x1\r\n\
                    #EXT-X-MAP:URI=\"init.mp4\"\r\n#EXTINF:4.0,\r\nseg0.m4s\r\n#EXTINF:4.0,\r\n  seg1.m4s?x=1#t  \r\n\
                    https://cdn.example.com/v/seg2.m4s\r\nhttps://other.example.net/seg3.m4s\r\n\
                    seg4.m4s?md5=own&expires=1\r\npicture.jpg\r\n#EXT-X-ENDLIST";
        let want = "#EXTM3U\r\n#EXT-X-VERSION:7\r\n#EXT-X-KEY:METHOD=AES-128,URI=\"enc.key?md5=TOK&expires=99\",IV=0x1\r\n\
                    #EXT-X-MAP:URI=\"init.mp4?md5=TOK&expires=99\"\r\n#EXTINF:4.0,\r\nseg0.m4s?md5=TOK&expires=99\r\n#EXTINF:4.0,\r\n  seg1.m4s?x=1&md5=TOK&expires=99#t  \r\n\
                    https://cdn.example.com/v/seg2.m4s?md5=TOK&expires=99\r\nhttps://other.example.net/seg3.m4s\r\n\
                    seg4.m4s?md5=own&expires=1\r\npicture.jpg\r\n#EXT-X-ENDLIST";
        assert_eq!(copy(Kind::Hls, body), want);
    }

    #[test]
    fn a_link_with_user_information_gets_no_token() {
        // The edge's own-host check, which cuts a port off at the first `:`.
        let t = types();
        let rw = Rewrite {
            to_types: &t,
            param_names: &[b"md5", b"expires"],
            addition: Addition::Copy(b"md5=TOK&expires=99"),
            base_dir: b"/v/",
            own_host: &|h| h.split(|&b| b == b':').next() == Some(b"cdn.example.com"),
        };
        for link in [
            "http://cdn.example.com:80@evil.example/x.ts",
            "https://cdn.example.com:@evil.example/x.ts",
            "//cdn.example.com:x@evil.example/x.ts",
        ] {
            let body = format!("#EXTM3U\n{link}\n");
            assert_eq!(
                rewrite(Kind::Hls, body.as_bytes(), &rw),
                body.as_bytes(),
                "{link}"
            );
        }
        assert_eq!(
            copy(Kind::Hls, "http://cdn.example.com/x.ts\n"),
            "http://cdn.example.com/x.ts?md5=TOK&expires=99\n"
        );
    }

    #[test]
    fn hls_master_playlist() {
        let body =
            "#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"en\",URI=\"audio/en.m3u8\"\n\
                    #EXT-X-STREAM-INF:BANDWIDTH=800000,AUDIO=\"a\"\n360p/index.m3u8\n\
                    #EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=90000,URI=\"360p/iframes.m3u8\"\n";
        let got = copy(Kind::Hls, body);
        assert_eq!(got.matches("?md5=TOK&expires=99").count(), 3, "{got}");
        assert!(got.ends_with("iframes.m3u8?md5=TOK&expires=99\"\n"));
    }

    #[test]
    fn dash_manifest() {
        let body = r#"<?xml version="1.0"?><MPD><Period><BaseURL>https://cdn.example.com/v/</BaseURL>
<AdaptationSet><SegmentTemplate timescale="1000" media="chunk-$RepresentationID$-$Number%05d$.m4s" initialization="init-$RepresentationID$.m4s"/>
<Representation id="0"><BaseURL> video.mp4 </BaseURL><SegmentList><Initialization sourceURL="i.mp4?a=b"/><SegmentURL media="s1.m4s"/></SegmentList></Representation>
</AdaptationSet></Period></MPD>"#;
        let got = copy(Kind::Dash, body);
        assert!(
            got.contains(
                r#"media="chunk-$RepresentationID$-$Number%05d$.m4s?md5=TOK&amp;expires=99""#
            ),
            "{got}"
        );
        assert!(
            got.contains(r#"initialization="init-$RepresentationID$.m4s?md5=TOK&amp;expires=99""#)
        );
        assert!(
            got.contains(r#"sourceURL="i.mp4?a=b&amp;md5=TOK&amp;expires=99""#),
            "{got}"
        );
        assert!(got.contains(r#"<SegmentURL media="s1.m4s?md5=TOK&amp;expires=99"/>"#));
        assert!(
            got.contains("<BaseURL> video.mp4?md5=TOK&amp;expires=99 </BaseURL>"),
            "{got}"
        );
        assert!(
            got.contains("<BaseURL>https://cdn.example.com/v/</BaseURL>"),
            "a directory has no file type"
        );
        assert!(got.contains(r#"timescale="1000""#));
    }

    #[test]
    fn sign_each_directory_signs_per_directory_within_scope() {
        let key = Key::new("secret_key").unwrap();
        let t = types();
        let rw = Rewrite {
            to_types: &t,
            param_names: &[b"md5", b"expires"],
            addition: Addition::SignEachDirectory {
                key: &key,
                expires: b"2147483647",
                ip: None,
                scope: b"/v/",
            },
            base_dir: b"/v/",
            own_host: &|_| false,
        };
        let body = b"#EXTM3U\n360p/index.m3u8\n720p/index.m3u8\n./360p/../720p/seg.ts\n../escape/x.ts\nmy%20dir/a.ts\n";
        let got = String::from_utf8(rewrite(Kind::Hls, body, &rw)).unwrap();
        let line = |n: usize| got.lines().nth(n).unwrap().to_owned();
        let token_for = |dir: &str| {
            tollgate_token::sign(&key, 2147483647, dir.as_bytes(), None)
                .unwrap()
                .as_str()
                .to_owned()
        };
        assert_eq!(
            line(1),
            format!(
                "360p/index.m3u8?md5={}&expires=2147483647",
                token_for("/v/360p/")
            )
        );
        assert_eq!(
            line(2),
            format!(
                "720p/index.m3u8?md5={}&expires=2147483647",
                token_for("/v/720p/")
            )
        );
        assert_eq!(
            line(3),
            format!(
                "./360p/../720p/seg.ts?md5={}&expires=2147483647",
                token_for("/v/720p/")
            )
        );
        assert_eq!(
            line(4),
            "../escape/x.ts",
            "outside the playlist's directory: not signed"
        );
        assert_eq!(
            line(5),
            format!(
                "my%20dir/a.ts?md5={}&expires=2147483647",
                token_for("/v/my dir/")
            )
        );
    }

    #[test]
    fn extensions() {
        assert_eq!(extension(b"/a/b.M3U8?x=1").as_deref(), Some("m3u8"));
        assert_eq!(extension(b"/a.b/c").as_deref(), None);
        assert_eq!(extension(b"seg.ts#f").as_deref(), Some("ts"));
        assert_eq!(Kind::of_extension("mpd"), Some(Kind::Dash));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body: Vec<u8>, dash: bool) {
            let kind = if dash { Kind::Dash } else { Kind::Hls };
            let _ = copy_bytes(kind, &body);
        }

        #[test]
        fn manifests_without_links_come_back_identical(lines in proptest::collection::vec("#[A-Z0-9:=,.\\- ]{0,40}|[ \t]*", 0..30), crlf: bool) {
            let body = lines.join(if crlf { "\r\n" } else { "\n" });
            proptest::prop_assert_eq!(copy(Kind::Hls, &body), body);
        }

        #[test]
        fn xml_without_link_attributes_comes_back_identical(body in "[a-zA-Z0-9<>/=\" .\n]{0,300}") {
            proptest::prop_assume!(!body.contains("BaseURL") && !body.contains("media=") && !body.contains("initialization=") && !body.contains("sourceURL="));
            proptest::prop_assert_eq!(copy(Kind::Dash, &body), body);
        }
    }

    /// The settings of the signing tests: every host the resource's, links signed per
    /// directory under `/`.
    fn signing<R>(f: impl FnOnce(&Rewrite<'_>) -> R) -> R {
        let t = types();
        let key = Key::new("secret_key").unwrap();
        f(&Rewrite {
            to_types: &t,
            param_names: &[b"md5", b"expires"],
            addition: Addition::SignEachDirectory {
                key: &key,
                expires: b"1",
                ip: None,
                scope: b"/",
            },
            base_dir: b"/v/",
            own_host: &|_| true,
        })
    }

    fn pieces(kind: Kind, body: &[u8], cuts: &[usize]) -> Vec<u8> {
        signing(|rw| pieces_with(kind, body, cuts, rw))
    }

    fn pieces_with(kind: Kind, body: &[u8], cuts: &[usize], rw: &Rewrite<'_>) -> Vec<u8> {
        let (mut r, mut out, mut at) = (Rewriter::new(kind), Vec::new(), 0);
        for c in cuts.iter().cycle() {
            if at >= body.len() {
                break;
            }
            let end = (at + c).min(body.len());
            r.push(&body[at..end], rw, &mut out);
            at = end;
        }
        r.finish(rw, &mut out);
        out
    }

    #[test]
    fn a_comment_inside_base_url_is_not_a_place_to_cut() {
        let body =
            b"<MPD><BaseURL>v.mp4<!--c--></BaseURL><BaseURL>w.mp4<![CDATA[x]]></BaseURL></MPD>";
        let whole = copy_bytes(Kind::Dash, body);
        assert!(String::from_utf8_lossy(&whole).contains("v.mp4?md5="));
        for first in 1..body.len() {
            assert_eq!(
                pieces(Kind::Dash, body, &[first, body.len()]),
                whole,
                "cut at {first}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn rewriting_in_pieces_is_rewriting_whole(
            hls in proptest::collection::vec(proptest::sample::select(vec![
                "#EXTM3U\n", "#EXTINF:4,\n", "seg1.ts\n", "a/b.ts?x=1\r\n", "../c/d.ts\n",
                "#EXT-X-KEY:METHOD=AES-128,URI=\"k/key.ts\"\n", "http://cdn.example.com/v.ts\n",
                "http://other.example/v.ts\n", "\n", "  x.ts  \n", "y.ts",
            ]), 0..40),
            dash in proptest::collection::vec(proptest::sample::select(vec![
                "<MPD>", "<BaseURL>", "v/", "http://cdn.example.com/b/", "</BaseURL>", "\n", " ",
                "<SegmentTemplate media=\"s$Number$.mp4\" initialization=\"i.mp4\"/>",
                "<SegmentURL media=\"x/1.mp4?a=1\"/>", "<BaseURL/>", "</MPD>",
                "<!--c-->", "<![CDATA[x]]>", "<BaseURL a=\"1\">", "<Base>",
            ]), 0..40),
            cuts in proptest::collection::vec(1usize..48, 1..12),
        ) {
            let hls = hls.concat();
            let dash = dash.concat();
            proptest::prop_assert_eq!(pieces(Kind::Hls, hls.as_bytes(), &cuts), copy_bytes(Kind::Hls, hls.as_bytes()));
            proptest::prop_assert_eq!(pieces(Kind::Dash, dash.as_bytes(), &cuts), copy_bytes(Kind::Dash, dash.as_bytes()));
        }

        #[test]
        fn what_a_rewriter_holds_back_is_bounded(len in 0usize..(3 * MAX_PENDING), newline: bool) {
            let t = types();
            let rw = Rewrite { to_types: &t, param_names: &[b"md5"], addition: Addition::Copy(b"md5=x"), base_dir: b"/", own_host: &|_| true };
            let mut r = Rewriter::new(if newline { Kind::Hls } else { Kind::Dash });
            let mut out = Vec::new();
            for _ in 0..(len / 4096 + 1) {
                r.push(&[b'a'; 4096], &rw, &mut out);
                proptest::prop_assert!(r.pending.len() <= MAX_PENDING && r.scanned <= r.pending.len());
            }
        }
    }

    fn copy_bytes(kind: Kind, body: &[u8]) -> Vec<u8> {
        signing(|rw| rewrite(kind, body, rw))
    }
}
