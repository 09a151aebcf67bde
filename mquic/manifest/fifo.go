package manifest

// fifo is a queue in insertion order from which any element can also be
// removed in O(1): a doubly linked list threaded through one slice, whose
// freed slots are reused, so that a queue that stays under its peak size
// allocates nothing.
type fifo[T any] struct {
	nodes      []fifoNode[T]
	head, tail int32 // -1 when empty
	free       int32 // first free slot, -1 when none
	n          int
}

type fifoNode[T any] struct {
	v          T
	prev, next int32
}

func newFIFO[T any]() fifo[T] { return fifo[T]{head: -1, tail: -1, free: -1} }

func (f *fifo[T]) len() int { return f.n }

// front returns the oldest element's slot, or -1.
func (f *fifo[T]) front() int32 { return f.head }

// at returns the element in slot i.
func (f *fifo[T]) at(i int32) *T { return &f.nodes[i].v }

// push appends v and returns its slot.
func (f *fifo[T]) push(v T) int32 {
	i, p := f.add()
	*p = v
	return i
}

// add appends a zero element and returns its slot and the element, to be
// filled in place: an element with pointers is not built and then copied
// (twice, with write barriers), which costs more than filling it.
func (f *fifo[T]) add() (int32, *T) {
	var i int32
	if f.free >= 0 {
		i = f.free
		f.free = f.nodes[i].next
	} else {
		i = int32(len(f.nodes))
		f.nodes = append(f.nodes, fifoNode[T]{})
	}
	nd := &f.nodes[i] // its element is zero (remove clears it)
	nd.prev, nd.next = f.tail, -1
	if f.tail >= 0 {
		f.nodes[f.tail].next = i
	} else {
		f.head = i
	}
	f.tail = i
	f.n++
	return i, &nd.v
}

// remove unlinks slot i and frees it.
func (f *fifo[T]) remove(i int32) {
	nd := &f.nodes[i]
	if nd.prev >= 0 {
		f.nodes[nd.prev].next = nd.next
	} else {
		f.head = nd.next
	}
	if nd.next >= 0 {
		f.nodes[nd.next].prev = nd.prev
	} else {
		f.tail = nd.prev
	}
	var zero T
	nd.v = zero
	nd.prev = -1
	nd.next = f.free
	f.free = i
	f.n--
}
