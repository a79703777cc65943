# A capability check of the crash tests: a kill point between two steps.
echo $$ > "$MARKERS/$1.started"
if [ "$HOLD" = "$1" ]; then sleep 60; fi
exit 0
