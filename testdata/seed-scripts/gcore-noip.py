import base64
from hashlib import md5
from time import time
secret = 'secret_key'  
path = "/images/1.jpg"  
# TTL of URL (in sec)
ttl = 100000
expires = int(time()) + ttl
#Token generation
token_hash = md5(f"{expires}{path} {secret}".encode()).digest()
token = base64.b64encode(token_hash).decode().replace("\n", "").replace("+", "-").replace("/", "_").replace("=", "")
secured_url = f"http://cdn.site.com{path}?md5={token}&expires={expires}"
# File's URL
print(secured_url) 
