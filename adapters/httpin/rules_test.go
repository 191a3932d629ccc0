package httpin_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/figway/figway/adapters/httpin"
	tv1 "github.com/figway/figway/gen/figway/testapi/v1"
)

// call is one REST request of a table and what must come of it.
type call struct {
	name         string
	verb, path   string
	body         string
	header       map[string]string
	wantMethod   string        // the method the worker must see
	wantReq      proto.Message // the request the worker must see
	reply        any           // the worker's answer (proto.Message or error)
	wantStatus   int
	wantJSON     string // the answer's body, compared as JSON values
	wantContains string // or: a substring of the answer's body
}

// run makes each call against b, with l answering.
func run(t *testing.T, b *bridge, l *library, calls []call) {
	t.Helper()
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			method := c.wantMethod
			if c.reply != nil {
				l.replies[strings.TrimPrefix(method, svc)] = c.reply
			}
			start := time.Now()
			resp := b.do(t, c.verb, c.path, c.body, c.header)
			t.Logf("%s %s: %d in %v: %s", c.verb, c.path, resp.status, time.Since(start), resp.body)
			if resp.status != c.wantStatus {
				t.Errorf("%s %s = %d; want %d", c.verb, c.path, resp.status, c.wantStatus)
			}
			if ct := resp.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q; want application/json", ct)
			}
			if c.wantJSON != "" {
				if diff := cmp.Diff(jsonValue(t, []byte(c.wantJSON)), jsonValue(t, resp.body)); diff != "" {
					t.Errorf("answer (-want +got):\n%s", diff)
				}
			}
			if c.wantContains != "" && !strings.Contains(string(resp.body), c.wantContains) {
				t.Errorf("answer %s; want it to contain %q", resp.body, c.wantContains)
			}
			if c.wantReq == nil {
				return
			}
			select {
			case s := <-l.got:
				if s.method != method {
					t.Errorf("worker got %s; want %s", s.method, method)
				}
				if diff := cmp.Diff(c.wantReq, s.req, protocmp.Transform()); diff != "" {
					t.Errorf("worker's request (-want +got):\n%s", diff)
				}
			case <-time.After(5 * time.Second):
				t.Errorf("worker got no request")
			}
		})
	}
}

const book = "shelves/s1/books/b1"

func ts(s string) *timestamppb.Timestamp {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return timestamppb.New(t)
}

// TestRuleShapes serves every shape of google.api.http rule of the test
// API through the real broker to the worker and back.
func TestRuleShapes(t *testing.T) {
	b := startBridge(t, routesTmpl, httpin.Options{})
	l := startWorker(t, b.url, map[string]any{})
	run(t, b, l, ruleShapeCalls())
}

// ruleShapeCalls are a call of every shape of rule of the test API.
func ruleShapeCalls() []call {
	dune := &tv1.Book{
		Name: book, Title: "Dune", Genre: tv1.Genre_GENRE_FICTION,
		Labels: map[string]string{"lang": "en"}, PublishedAt: ts("1965-08-01T00:00:00Z"),
		Rating: wrapperspb.Int32(5), PageCount: 412, Location: &tv1.Book_Shelf{Shelf: &tv1.Shelf{Id: "s1"}},
	}
	duneJSON := `{"name":"shelves/s1/books/b1","title":"Dune","genre":"GENRE_FICTION","labels":{"lang":"en"},
		"publishedAt":"1965-08-01T00:00:00Z","rating":5,"pageCount":"412","shelf":{"id":"s1"}}`
	return []call{{
		name: "get with a segment variable and query", verb: "GET",
		path:       "/v1/shelves/s1/books/b1?read_mask=title,authors&includeReviews=true",
		wantMethod: svc + "GetBook",
		wantReq: &tv1.GetBookRequest{Name: book, IncludeReviews: true,
			ReadMask: &fieldmaskpb.FieldMask{Paths: []string{"title", "authors"}}},
		reply: dune, wantStatus: 200, wantJSON: duneJSON,
	}, {
		name: "post with body field, path and query", verb: "POST",
		path: "/v1/shelves/s1/books?request_id=r-1",
		body: `{"title":"Dune","authors":[{"displayName":"Frank Herbert","aliases":["FH"]}],
			"genre":"GENRE_FICTION","readTime":"3600s","rating":5,"borrower":"ann","price":9.5}`,
		wantMethod: svc + "CreateBook",
		wantReq: &tv1.CreateBookRequest{Parent: "shelves/s1", RequestId: "r-1", Book: &tv1.Book{
			Title: "Dune", Authors: []*tv1.Author{{DisplayName: "Frank Herbert", Aliases: []string{"FH"}}},
			Genre: tv1.Genre_GENRE_FICTION, ReadTime: durationpb.New(time.Hour), Rating: wrapperspb.Int32(5),
			Location: &tv1.Book_Borrower{Borrower: "ann"}, Price: proto.Float64(9.5),
		}},
		reply: dune, wantStatus: 200, wantJSON: duneJSON,
	}, {
		name: "patch: a nested path variable wins over the body", verb: "PATCH",
		path: "/v1/shelves/s1/books/b1?update_mask=title", body: `{"name":"shelves/x/books/y","title":"New"}`,
		wantMethod: svc + "UpdateBook",
		wantReq: &tv1.UpdateBookRequest{Book: &tv1.Book{Name: book, Title: "New"},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"title"}}},
		wantStatus: 200, wantJSON: `{}`,
	}, {
		name: "put: additional binding with body *", verb: "PUT",
		path: "/v1/shelves/s1/books/b1", body: `{"book":{"title":"Put"},"allowMissing":true}`,
		wantMethod: svc + "UpdateBook",
		wantReq:    &tv1.UpdateBookRequest{Book: &tv1.Book{Name: book, Title: "Put"}, AllowMissing: true},
		wantStatus: 200, wantJSON: `{}`,
	}, {
		name: "delete without body, wrapper in the query", verb: "DELETE", path: "/v1/shelves/s1/books/b1?etag=v3",
		wantMethod: svc + "DeleteBook",
		wantReq:    &tv1.DeleteBookRequest{Name: book, Etag: wrapperspb.String("v3")},
		reply:      &tv1.DeleteBookResponse{Name: book, Deleted: true},
		wantStatus: 200, wantJSON: `{"name":"shelves/s1/books/b1","deleted":true}`,
	}, {
		name: "get: every kind of query parameter, JSON route encoding", verb: "GET",
		path: "/v1/books:search?query=dune&genres=GENRE_FICTION&genres=2&tags=a&tags=b" +
			"&published_after=2020-01-01T00:00:00Z&maxReadTime=90s&min_rating=4" +
			"&filter.author=Herbert&filter.years=1965&filter.years=1966&filter.genre=GENRE_HISTORY" +
			"&page_size=10&labels%5Blang%5D=en&available=false&min_pages=100&max_price=9.5&cursor=YWJj",
		wantMethod: svc + "SearchBooks",
		wantReq: &tv1.SearchBooksRequest{
			Query: "dune", Genres: []tv1.Genre{tv1.Genre_GENRE_FICTION, tv1.Genre_GENRE_SCIENCE}, Tags: []string{"a", "b"},
			PublishedAfter: ts("2020-01-01T00:00:00Z"), MaxReadTime: durationpb.New(90 * time.Second),
			MinRating: wrapperspb.Int32(4),
			Filter:    &tv1.SearchBooksRequest_Filter{Author: "Herbert", Years: []int32{1965, 1966}, Genre: tv1.Genre_GENRE_HISTORY},
			PageSize:  10, Labels: map[string]string{"lang": "en"}, Available: wrapperspb.Bool(false),
			MinPages: 100, MaxPrice: 9.5, Cursor: []byte("abc"),
		},
		reply:      &tv1.SearchBooksResponse{Books: []*tv1.Book{{Name: book}}, NextPageToken: "p2"},
		wantStatus: 200, wantJSON: `{"books":[{"name":"shelves/s1/books/b1"}],"nextPageToken":"p2"}`,
	}, {
		name: "post: additional binding, body *", verb: "POST", path: "/v1/books:search",
		body:       `{"query":"dune","genres":["GENRE_SCIENCE",3],"filter":{"author":"x"},"labels":{"k":"v"}}`,
		wantMethod: svc + "SearchBooks",
		wantReq: &tv1.SearchBooksRequest{Query: "dune", Genres: []tv1.Genre{tv1.Genre_GENRE_SCIENCE, tv1.Genre_GENRE_HISTORY},
			Filter: &tv1.SearchBooksRequest_Filter{Author: "x"}, Labels: map[string]string{"k": "v"}},
		reply:      &tv1.SearchBooksResponse{},
		wantStatus: 200, wantJSON: `{}`,
	}, {
		name: "custom verb MOVE", verb: "MOVE", path: "/v1/shelves/s1/books/b1",
		body: `{"destination_shelf":"shelves/s2"}`, wantMethod: svc + "MoveBook",
		wantReq:    &tv1.MoveBookRequest{Name: book, DestinationShelf: "shelves/s2"},
		reply:      &tv1.Book{Name: "shelves/s2/books/b1"},
		wantStatus: 200, wantJSON: `{"name":"shelves/s2/books/b1"}`,
	}, {
		name: "body is a repeated field; :verb suffix", verb: "POST", path: "/v1/shelves/s1/books/b1:tag",
		body: `["x","y"]`, wantMethod: svc + "TagBook",
		wantReq:    &tv1.TagBookRequest{Name: book, Tags: []string{"x", "y"}},
		reply:      &tv1.Book{Name: book, Tags: []string{"x", "y"}},
		wantStatus: 200, wantJSON: `{"name":"shelves/s1/books/b1","tags":["x","y"]}`,
	}, {
		name: "nested path variable, response_body map, nested query", verb: "GET",
		path: "/v1/shelves/s7/stats?shelf.theme=sci-fi", wantMethod: svc + "GetShelfStats",
		wantReq:    &tv1.GetShelfStatsRequest{Shelf: &tv1.Shelf{Id: "s7", Theme: "sci-fi"}},
		reply:      &tv1.ShelfStats{Counts: map[string]int64{"GENRE_FICTION": 3}, Total: 3},
		wantStatus: 200, wantJSON: `{"GENRE_FICTION":"3"}`,
	}, {
		name: "enum path variable by name", verb: "GET", path: "/v1/shelves/s7/stats/GENRE_SCIENCE",
		wantMethod: svc + "GetShelfStats",
		wantReq:    &tv1.GetShelfStatsRequest{Shelf: &tv1.Shelf{Id: "s7"}, Genre: tv1.Genre_GENRE_SCIENCE},
		reply:      &tv1.ShelfStats{},
		wantStatus: 200, wantJSON: `{}`,
	}, {
		name: "enum path variable by number", verb: "GET", path: "/v1/shelves/s7/stats/3",
		wantMethod: svc + "GetShelfStats",
		wantReq:    &tv1.GetShelfStatsRequest{Shelf: &tv1.Shelf{Id: "s7"}, Genre: tv1.Genre_GENRE_HISTORY},
		reply:      &tv1.ShelfStats{},
		wantStatus: 200, wantJSON: `{}`,
	}, {
		name: "escaped characters in a path variable", verb: "GET", path: "/v1/shelves/s%20one/books/b%3F1",
		wantMethod: svc + "GetBook",
		wantReq:    &tv1.GetBookRequest{Name: "shelves/s one/books/b?1"},
		reply:      &tv1.Book{},
		wantStatus: 200, wantJSON: `{}`,
	}}
}

// TestEventAnswers202 proves that an event route answers 202 Accepted
// with the event id, once the broker has the event.
func TestEventAnswers202(t *testing.T) {
	b := startBridge(t, routesTmpl, httpin.Options{})
	l := startWorker(t, b.url, map[string]any{})
	resp := b.do(t, "POST", "/v1/notifications", `{"topic":"shelf.full","payload":{"shelf":"s1","count":3}}`, nil)
	if resp.status != 202 {
		t.Fatalf("POST /v1/notifications = %d %s; want 202", resp.status, resp.body)
	}
	id := resp.header.Get(httpin.HeaderEventID)
	if len(id) != 32 {
		t.Errorf("%s = %q; want a 32-hex event id", httpin.HeaderEventID, id)
	}
	if diff := cmp.Diff(map[string]any{}, jsonValue(t, resp.body)); diff != "" {
		t.Errorf("answer (-want +got):\n%s", diff)
	}
	payload, _ := structpb.NewStruct(map[string]any{"shelf": "s1", "count": 3})
	select {
	case s := <-l.got:
		want := &tv1.NotifyRequest{Topic: "shelf.full", Payload: payload}
		if diff := cmp.Diff(want, s.req, protocmp.Transform()); diff != "" {
			t.Errorf("worker's event (-want +got):\n%s", diff)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("worker got no event")
	}
}
