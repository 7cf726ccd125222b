package dataset

import (
	"errors"
	"fmt"
	"strings"

	"github.com/lora-dev/lora/pkg/diag"
	"github.com/lora-dev/lora/pkg/examples"
)

var errEnough = errors.New("sample complete")

// Check reads the first sample records of the dataset file (all of them
// when sample <= 0) and reports, without tokenizing: JSON and field-type
// problems at their line and column, and every field set that no template
// of f matches, once per set at its first record, with how many sampled
// records have it. Unmatched sets are errors (code "unmatched-record");
// a caller whose stage sets skip_unmatched reports them as warnings.
func Check(file string, f *Format, sample int) diag.List {
	var ds diag.List
	type miss struct {
		first Record
		n     int
	}
	var order []string
	missing := map[string]*miss{}
	n := 0
	err := Read(file, func(r Record) error {
		if t := f.Match(r); t == nil {
			set := strings.Join(r.Set(), ",")
			if m, ok := missing[set]; ok {
				m.n++
			} else {
				missing[set] = &miss{first: r, n: 1}
				order = append(order, set)
			}
		}
		n++
		if sample > 0 && n >= sample {
			return errEnough
		}
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		var d diag.Diagnostic
		if errors.As(err, &d) {
			ds.Add(d)
		} else {
			ds.Add(diag.Errorf(diag.Range{File: file}, "dataset-read", "%v", err))
		}
	}
	for _, set := range order {
		m := missing[set]
		p := Pos(file, m.first.Offset)
		ds.Add(diag.Errorf(diag.At(file, p.Line, p.Col), "unmatched-record",
			"%d of %d records checked have fields {%s} (the first is record %d), which no template of format %s matches (it has {%s})",
			m.n, n, set, m.first.Index, formatLabel(f), strings.Join(f.Keys(), "}, {")).
			WithHint("add a template for that field set to a format file, fix the records (empty fields count as absent), or set skip_unmatched: true"))
	}
	return ds
}

// Sample formats and tokenizes the first sample records (all when
// sample <= 0) as the format stage would, without writing anything, and
// returns their stats and how many records the file holds in all.
func Sample(file string, f *Format, tok examples.Tokenizer, opts Options, sample int) (st examples.Stats, total int, err error) {
	return sampleRecords(file, f, tok, opts, sample, true)
}

func sampleRecords(file string, f *Format, tok examples.Tokenizer, opts Options, sample int, countAll bool) (st examples.Stats, total int, err error) {
	fm, err := NewFormatter(f, tok, opts)
	if err != nil {
		return st, 0, err
	}
	err = Read(file, func(r Record) error {
		if sample > 0 && st.Records >= sample {
			if !countAll {
				return errEnough
			}
			total++
			return nil
		}
		total++
		st.Records++
		ex, oc := fm.Example(r)
		switch oc {
		case Unmatched:
			st.UnmatchedSkipped++
		case Dropped:
			st.Dropped++
		case Truncated:
			st.Truncated++
			st.Count(ex, false)
		default:
			st.Count(ex, false)
		}
		return nil
	})
	if errors.Is(err, errEnough) {
		err = nil
	}
	return st, total, err
}

// CheckExamples formats and tokenizes the first sample records (all when
// sample <= 0) as the format stage would, and warns when most of them would
// be truncated at the cutoff or would have no trained token
// (examples.Warnings), or all would be dropped. Option errors are returned
// as one error diagnostic.
func CheckExamples(file string, f *Format, tok examples.Tokenizer, opts Options, sample int) diag.List {
	st, _, err := sampleRecords(file, f, tok, opts, sample, false)
	if err != nil {
		var d diag.Diagnostic
		if errors.As(err, &d) {
			return diag.List{d}
		}
		return diag.List{diag.Errorf(diag.Range{File: file}, "format-options", "%v", err)}
	}
	st.UnmatchedSkipped = 0 // Check reports unmatched records
	ds := examples.Warnings(st, file)
	if st.Examples == 0 && st.Dropped > 0 {
		ds.Add(diag.Warningf(diag.Range{File: file}, "all-dropped", "all %d records checked are longer than cutoff_len %d and would be dropped", st.Dropped, opts.CutoffLen).
			WithHint("raise cutoff_len, or use overflow: truncate"))
	}
	for i := range ds {
		ds[i].Message = fmt.Sprintf("%s (checked %d records)", ds[i].Message, st.Records)
	}
	return ds
}
