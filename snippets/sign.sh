#!/bin/sh
# Prints a signed link for a CDN resource with the secure token on (Tollgate, Gcore, nginx
# secure_link). Needs openssl and od. Run: sh sign.sh. See docs/signing.md.
secret='secret_key'               # tollgate:key       the resource's secure key
base='https://cdn.example.com'    # tollgate:base      scheme and CDN hostname
path='/videos/my film.mp4'        # tollgate:path      the file's path, not URL-encoded
ip=''                             # tollgate:ip        viewer's IP (type 0 resources); '' for type 2
lifetime=3600                     # tollgate:lifetime  seconds the link stays valid
window=0                          # tollgate:window    round expiry up to a multiple of this; 0: off

expires=$(( $(date +%s) + lifetime ))
if [ "$window" -gt 0 ]; then
    # The same link for every page view in a window, so browsers and the CDN can cache it.
    expires=$(( (expires + window - 1) / window * window ))
fi
token=$(printf '%s' "${expires}${path}${ip} ${secret}" | openssl md5 -binary | openssl base64 -A | tr '+/' '-_' | tr -d '=')
# Percent-encode every byte of the path but letters, digits and -._~/ (as rawurlencode does).
url_path=$(printf '%s' "$path" | od -An -v -tx1 | tr -s ' \n' '\n\n' | while read -r h; do
    [ -n "$h" ] || continue
    case "$h" in
        2[def]|3[0-9]|4[1-9a-f]|5[0-9a]|5f|6[1-9a-f]|7[0-9a]|7e) printf "\\$(printf '%03o' "0x$h")" ;;
        *) printf '%%%s' "$(printf '%s' "$h" | tr 'a-f' 'A-F')" ;;
    esac
done)
printf '%s%s?md5=%s&expires=%s\n' "$base" "$url_path" "$token" "$expires"
