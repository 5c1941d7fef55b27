# Applied by kiln's `hardening-vm` layer to usbguard's own /etc/usbguard/usbguard-daemon.conf
# (everything else stays the package's). A server VM has no USB devices anyone should plug in:
# devices present at boot and inserted later are checked against the rule file, and whatever
# it does not allow is blocked (lynis USB-3000, RHEL STIG's usbguard items).
s|^#\?RuleFile=.*|RuleFile=/etc/usbguard/rules.conf|
s|^#\?ImplicitPolicyTarget=.*|ImplicitPolicyTarget=block|
s|^#\?PresentDevicePolicy=.*|PresentDevicePolicy=apply-policy|
s|^#\?PresentControllerPolicy=.*|PresentControllerPolicy=apply-policy|
s|^#\?InsertedDevicePolicy=.*|InsertedDevicePolicy=apply-policy|
s|^#\?RestoreControllerDeviceState=.*|RestoreControllerDeviceState=false|
