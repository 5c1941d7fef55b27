# Installed by kiln's `hardening` layer: login shells leave no core dumps (CIS Debian 1.5.1)
# and end after @TMOUT@ idle seconds (CIS Debian 5.4.5); readonly, so a session cannot undo it.
ulimit -c 0
TMOUT=@TMOUT@
readonly TMOUT
export TMOUT
