# Prints a signed link for a CDN resource with the secure token on (Tollgate, Gcore, nginx
# secure_link). Run: python3 sign.py. See docs/signing.md.
import base64
import hashlib
import time
import urllib.parse

secret = 'secret_key'               # tollgate:key       the resource's secure key
base = 'https://cdn.example.com'    # tollgate:base      scheme and CDN hostname
path = '/videos/my film.mp4'        # tollgate:path      the file's path, not URL-encoded
ip = ''                             # tollgate:ip        viewer's IP (type 0 resources); '' for type 2
lifetime = 3600                     # tollgate:lifetime  seconds the link stays valid
window = 0                          # tollgate:window    round expiry up to a multiple of this; 0: off

expires = int(time.time()) + lifetime
if window > 0:
    # The same link for every page view in a window, so browsers and the CDN can cache it.
    expires = -(-expires // window) * window
digest = hashlib.md5(f"{expires}{path}{ip} {secret}".encode()).digest()
token = base64.urlsafe_b64encode(digest).decode().rstrip("=")
print(f"{base}{urllib.parse.quote(path)}?md5={token}&expires={expires}")
