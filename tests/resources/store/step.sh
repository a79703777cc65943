# One step of the crash tests: note its start (and the process to kill), hold when it is the
# kill point, then count one completed run and set an output.
echo $$ > "$MARKERS/$1.started"
if [ "$HOLD" = "$1" ]; then sleep 60; fi
echo ran >> "$COUNTERS/$1"
echo "##wfe[output out_$1=value-$1]"
