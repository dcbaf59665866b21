#!/bin/sh
exec echo "running with $*"
