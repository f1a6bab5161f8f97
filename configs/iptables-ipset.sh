#!/bin/sh
# The iptables and ipset lines for knockd's IPSet doors
# (configs/ipset-knockd.conf): SSH is reachable only from addresses in the
# ipsets, which knockd fills on each OPEN SESAME and the kernel empties
# Cmd_Timeout later, whether or not knockd still runs.
set -e
ipset create knock4 hash:ip family inet timeout 60
ipset create knock6 hash:ip family inet6 timeout 60
iptables -A INPUT -i lo -j ACCEPT
# A session opened while the door was open outlives the opening.
iptables -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
iptables -A INPUT -p tcp --dport 22 -m set --match-set knock4 src -j ACCEPT
iptables -A INPUT -p tcp --dport 22 -j DROP
ip6tables -A INPUT -i lo -j ACCEPT
ip6tables -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
ip6tables -A INPUT -p tcp --dport 22 -m set --match-set knock6 src -j ACCEPT
ip6tables -A INPUT -p tcp --dport 22 -j DROP
