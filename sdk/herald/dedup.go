package herald

// seqWindow is how far below the highest seq received a late seq is still
// recognised as new (live pushes racing through different nodes may arrive
// out of order); anything older counts as seen.
const seqWindow = 4096

// idWindow is how many recent message ids are remembered.
const idWindow = 1024

// dedup remembers what a Conn delivered, so that nothing is delivered
// twice: stored messages by seq, every message by id.
type dedup struct {
	floor uint64              // every seq at or below it counts as seen
	top   uint64              // highest seq seen
	seqs  map[uint64]struct{} // seqs seen above floor
	ids   map[string]struct{}
	ring  [idWindow]string // ids in arrival order, oldest overwritten
	next  int
}

// reset forgets everything and counts every seq up to floor as seen.
func (d *dedup) reset(floor uint64) {
	*d = dedup{floor: floor, top: floor, seqs: map[uint64]struct{}{}, ids: map[string]struct{}{}}
}

// seq records n and reports whether it is new.
func (d *dedup) seq(n uint64) bool {
	if n <= d.floor {
		return false
	}
	if _, ok := d.seqs[n]; ok {
		return false
	}
	d.seqs[n] = struct{}{}
	d.top = max(d.top, n)
	if len(d.seqs) > 2*seqWindow {
		d.floor = d.top - seqWindow
		for s := range d.seqs {
			if s <= d.floor {
				delete(d.seqs, s)
			}
		}
	}
	return true
}

// id records a message id and reports whether it is new.
func (d *dedup) id(id string) bool {
	if _, ok := d.ids[id]; ok {
		return false
	}
	if old := d.ring[d.next]; old != "" {
		delete(d.ids, old)
	}
	d.ring[d.next] = id
	d.next = (d.next + 1) % idWindow
	d.ids[id] = struct{}{}
	return true
}
