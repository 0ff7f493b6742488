package workflows

import (
	"fmt"

	"go.temporal.io/sdk/workflow"

	"payflow/activities"
	"payflow/protocol"
)

// SignalBlock is the naive baseline's per-block signal (a block number).
const SignalBlock = "block"

// NaiveInput starts a NaivePayment.
type NaiveInput struct {
	Payment       PaymentInput
	Confirmations uint64
}

// NaivePayment is the deliberately naive baseline `make bench` measures
// payflow against: the same activities, one regular activity per step, and
// confirmations counted by the workflow itself from one signal per block
// (each followed by a receipt check). It is never started by the starter;
// the benchmark starts it directly and sends the block signals.
func NaivePayment(ctx workflow.Context, in NaiveInput) (PaymentResult, error) {
	r := in.Payment.Request
	wfID := workflow.GetInfo(ctx).WorkflowExecution.ID
	resp := protocol.PaymentResponse{QueueID: r.QueueID, Status: protocol.StatusFailed, Amount: r.Amount, Chain: r.Chain,
		Symbol: r.Symbol, OrderID: r.OrderID, FromAddress: r.FromAddress, ToAddress: r.ToAddress}
	var a *activities.Activities
	lctx := workflow.WithActivityOptions(ctx, ledgerOpts)
	cctx := workflow.WithActivityOptions(ctx, chainOpts)
	publish := func() (PaymentResult, error) {
		err := workflow.ExecuteActivity(lctx, a.PublishResult, activities.PublishInput{Flow: protocol.FlowWithdraw,
			MessageID: wfID + "/result", Payment: &resp}).Get(ctx, nil)
		return resp, err
	}
	var rsv activities.ReserveResult
	if err := workflow.ExecuteActivity(lctx, a.ReserveFunds, activities.ReserveInput{Key: wfID, Chain: r.Chain,
		Symbol: r.Symbol, FromAddress: r.FromAddress, Amount: r.Amount}).Get(ctx, &rsv); err != nil {
		resp.Error = errorMessage(err)
		return publish()
	}
	resp.FromAddress = rsv.PayingAddress
	var signed activities.TransferResult
	if err := workflow.ExecuteActivity(cctx, a.SignTransfer, activities.TransferInput{WorkflowID: wfID, Step: transferStep,
		Symbol: r.Symbol, From: rsv.PayingAddress, To: r.ToAddress, Amount: r.Amount}).Get(ctx, &signed); err != nil {
		resp.Error = errorMessage(err)
		_ = workflow.ExecuteActivity(lctx, a.ReleaseFunds, activities.ReleaseInput{Key: wfID}).Get(ctx, nil)
		return publish()
	}
	resp.TxHash = signed.TxHash
	if err := workflow.ExecuteActivity(cctx, a.Broadcast, activities.BroadcastInput{WorkflowID: wfID, Step: transferStep}).Get(ctx, nil); err != nil {
		resp.Error = errorMessage(err)
		return publish()
	}
	blocks := workflow.GetSignalChannel(ctx, SignalBlock)
	for {
		var head uint64
		blocks.Receive(ctx, &head)
		var rc activities.ReceiptResult
		if err := workflow.ExecuteActivity(cctx, a.CheckReceipt, activities.ReceiptInput{TxHash: signed.TxHash}).Get(ctx, &rc); err != nil {
			return resp, err
		}
		if rc.Mined && head+1 >= rc.BlockNumber+in.Confirmations {
			resp.BlockNumber = rc.BlockNumber
			if !rc.Succeeded {
				resp.Error = fmt.Sprintf("transaction %s reverted", signed.TxHash)
				_ = workflow.ExecuteActivity(lctx, a.ReleaseFunds, activities.ReleaseInput{Key: wfID}).Get(ctx, nil)
				return publish()
			}
			break
		}
	}
	if err := workflow.ExecuteActivity(lctx, a.SettleFunds, activities.SettleInput{Key: wfID, TxHash: signed.TxHash}).Get(ctx, nil); err != nil {
		return resp, err
	}
	resp.Status = protocol.StatusSucceeded
	return publish()
}
