echo "mode=$MODE"
