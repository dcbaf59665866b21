echo "building $(ls /scripts | wc -l) scripts"
