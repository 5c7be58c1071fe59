package protocol

import "testing"

func TestConnNode(t *testing.T) {
	for id, want := range map[string]string{"c_n1_1": "n1", "c_node-a_zz": "node-a", "c_": "", "x_n_1": "", "c_n_": "", "c__1": ""} {
		got, ok := ConnNode(id)
		if got != want || ok != (want != "") {
			t.Errorf("ConnNode(%q) = %q, %v", id, got, ok)
		}
	}
	if id := ConnID("node-a", 35); id != "c_node-a_z" {
		t.Errorf("ConnID = %q", id)
	}
	if node, _ := ConnNode(ConnID("n1", 1<<40)); node != "n1" {
		t.Errorf("ConnNode(ConnID(n1, …)) = %q", node)
	}
}
