# Applied to /etc/login.defs by kiln's `hardening` layer (CIS Debian 5.4.x, dev-sec os-05..07).
# New files and home folders are not world-readable.
s/^UMASK\s.*/UMASK\t\t027/
# Passwords (where an account ever gets one) age: at most a year, changed at most daily.
s/^PASS_MAX_DAYS\s.*/PASS_MAX_DAYS\t365/
s/^PASS_MIN_DAYS\s.*/PASS_MIN_DAYS\t1/
s/^ENCRYPT_METHOD\s.*/ENCRYPT_METHOD SHA512/
# SHA-512 crypt with many rounds: each guess costs an attacker 100 times the default.
s/^#\?\s*SHA_CRYPT_MIN_ROUNDS\s.*/SHA_CRYPT_MIN_ROUNDS 500000/
s/^#\?\s*SHA_CRYPT_MAX_ROUNDS\s.*/SHA_CRYPT_MAX_ROUNDS 500000/
