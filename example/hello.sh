#!/bin/sh
echo "hello from idpbuilder: $(cat /etc/motd)"
